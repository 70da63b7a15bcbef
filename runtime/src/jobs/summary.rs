//! The job summary: the machine-readable record written to `summary.json` on every state
//! transition, so a crash leaves the last known state on disk.

use super::outcome::{FailureReason, StageStatus};
use crate::volumes::TreeDigest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub job_id: String,
    pub pipeline: String,
    pub pipeline_file: PathBuf,
    pub tenant: String,
    pub status: JobStatus,
    /// Seconds since the Unix epoch.
    pub started_unix: f64,
    pub duration_s: Option<f64>,
    pub payload: PayloadRecord,
    /// Job-level parameter overrides (`--param`).
    pub parameters: BTreeMap<String, String>,
    pub stages: Vec<StageRecord>,
    /// The first stage that failed, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobFailure {
    /// The stage that failed; none when the job as a whole failed (e.g. its payload changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub reason: FailureReason,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayloadRecord {
    pub path: PathBuf,
    pub before: TreeDigest,
    /// Taken when the job ends; equal to `before` unless something outside Ward changed it.
    pub after: Option<TreeDigest>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub name: String,
    pub status: StageStatus,
    pub component: PathBuf,
    pub digest: Option<String>,
    pub memory_cap_bytes: u64,
    pub timeout_s: f64,
    /// Seconds from the job's start.
    pub started_at_s: Option<f64>,
    pub instantiate_ms: Option<f64>,
    pub duration_s: Option<f64>,
    pub memory_peak_bytes: Option<u64>,
    pub outputs: BTreeMap<String, PathBuf>,
    pub log: PathBuf,
    pub log_dropped_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

impl JobSummary {
    pub fn stage_mut(&mut self, name: &str) -> Option<&mut StageRecord> {
        self.stages.iter_mut().find(|s| s.name == name)
    }

    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|s| s.name == name)
    }

    fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a summary serializes");
        text.push(b'\n');
        text
    }
}

/// `summary.json` while the job runs, rewritten at every transition. Creating a file per
/// transition costs more than the stages of a small job, so two files are kept — the summary
/// and `summary.json.next` — and each update writes the next version into the spare one and
/// swaps the two names atomically (`renameat2(RENAME_EXCHANGE)`): a reader or a crash sees
/// one whole version or the one before it.
pub struct SummaryFile {
    path: PathBuf,
    spare_path: PathBuf,
    /// Open handles on the inode named `path` and the one named `spare_path`.
    current: std::fs::File,
    spare: Option<std::fs::File>,
}

impl SummaryFile {
    pub fn create(path: &Path, summary: &JobSummary) -> std::io::Result<SummaryFile> {
        let current = std::fs::File::create(path)?;
        write_whole(&current, &summary.to_json())?;
        Ok(SummaryFile {
            path: path.to_path_buf(),
            spare_path: path.with_extension("json.next"),
            current,
            spare: None,
        })
    }

    pub fn update(&mut self, summary: &JobSummary) -> std::io::Result<()> {
        let text = summary.to_json();
        let spare = match self.spare.take() {
            Some(f) => f,
            None => std::fs::File::create(&self.spare_path)?,
        };
        write_whole(&spare, &text)?;
        let swapped = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.spare_path,
            rustix::fs::CWD,
            &self.path,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        match swapped {
            Ok(()) => {
                self.spare = Some(std::mem::replace(&mut self.current, spare));
                Ok(())
            }
            // A file system without the exchange: rewrite in place.
            Err(_) => {
                self.spare = Some(spare);
                write_whole(&self.current, &text)
            }
        }
    }

    /// Writes the final version and removes the spare.
    pub fn finish(mut self, summary: &JobSummary) -> std::io::Result<()> {
        self.update(summary)?;
        if self.spare.take().is_some() {
            std::fs::remove_file(&self.spare_path)?;
        }
        Ok(())
    }
}

fn write_whole(file: &std::fs::File, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(text, 0)?;
    file.set_len(text.len() as u64)
}
