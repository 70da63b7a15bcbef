//! The job summary: the machine-readable record written to `summary.json` on every state
//! transition, so a crash leaves the last known state on disk.

use super::outcome::{FailureReason, StageStatus};
use super::request::JobRequest;
use crate::volumes::{JobLayout, TreeDigest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// The summary of `req` before any stage ran; `digests` are its components' digests in
    /// stage order.
    pub fn pending(
        req: &JobRequest,
        digests: &[String],
        layout: &JobLayout,
        payload: TreeDigest,
    ) -> JobSummary {
        JobSummary {
            job_id: req.job_id.clone(),
            pipeline: req.pipeline.name.clone(),
            pipeline_file: req.pipeline.file.clone(),
            tenant: req.tenant.clone(),
            status: JobStatus::Running,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            duration_s: None,
            payload: PayloadRecord {
                path: req.payload.clone(),
                before: payload,
                after: None,
            },
            parameters: req.parameters.clone(),
            stages: req
                .pipeline
                .stages
                .iter()
                .zip(digests)
                .map(|(s, digest)| StageRecord {
                    name: s.name.clone(),
                    status: StageStatus::Pending,
                    component: s.component.path.clone(),
                    digest: Some(digest.clone()),
                    memory_cap_bytes: s.requests.memory_bytes,
                    timeout_s: s.requests.timeout.as_secs_f64(),
                    started_at_s: None,
                    instantiate_ms: None,
                    duration_s: None,
                    memory_peak_bytes: None,
                    outputs: s
                        .outputs
                        .iter()
                        .map(|o| (o.name.clone(), layout.results_dir(&s.name, &o.name)))
                        .collect(),
                    log: layout.log_path(&s.name),
                    log_dropped_bytes: 0,
                    reason: None,
                })
                .collect(),
            failure: None,
        }
    }

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
