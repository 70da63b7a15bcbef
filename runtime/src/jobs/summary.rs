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
    pub stage: String,
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

    /// Writes the final summary through a temporary file and a rename, so a reader never
    /// sees it half-written.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }

    fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a summary serializes");
        text.push(b'\n');
        text
    }
}

/// `summary.json` while the job runs: rewritten in place at every transition through one
/// open file, since creating a file per transition costs more than the stages of a small job.
/// The last write, when the job ends, is atomic ([`JobSummary::write`]).
pub struct SummaryFile {
    path: PathBuf,
    file: std::fs::File,
}

impl SummaryFile {
    pub fn create(path: &Path, summary: &JobSummary) -> std::io::Result<SummaryFile> {
        let mut file = SummaryFile {
            path: path.to_path_buf(),
            file: std::fs::File::create(path)?,
        };
        file.update(summary)?;
        Ok(file)
    }

    pub fn update(&mut self, summary: &JobSummary) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let text = summary.to_json();
        self.file.write_all_at(&text, 0)?;
        self.file.set_len(text.len() as u64)
    }

    pub fn finish(self, summary: &JobSummary) -> std::io::Result<()> {
        summary.write(&self.path)
    }
}
