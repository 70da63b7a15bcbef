//! The job summary: the machine-readable record written to `summary.json` on every state
//! transition, so a crash leaves the last known state on disk.

use super::outcome::{FailureReason, StageStatus};
use super::request::JobRequest;
use crate::ports::{BudgetStats, PortStats};
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
    /// What each port channel carried (empty when the pipeline has no ports).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStats>,
    /// The job's channel budget and what all its channels held at once (none when the
    /// pipeline has no ports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_budget: Option<BudgetStats>,
    /// The stage whose failure failed the job, and why: the first that failed of itself
    /// rather than because a port peer failed.
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
    /// For a registry component: its reference, manifest digest and the key that signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::pipeline::ComponentOrigin>,
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
            ports: Vec::new(),
            port_budget: None,
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
                    provenance: s.component.registry.as_ref().and_then(|r| r.origin.clone()),
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
/// swaps the two names atomically (`renameat2(RENAME_EXCHANGE)`): a reader that opens the
/// summary sees one whole version. Where the exchange is not possible, the spare is renamed
/// over the summary (also atomic; the next update creates a new spare). The final version is
/// always put in place by a rename, leaving `summary.json` alone.
pub struct SummaryFile {
    path: PathBuf,
    spare_path: PathBuf,
    /// An open handle on the inode named `spare_path`, when there is one.
    spare: Option<std::fs::File>,
}

impl SummaryFile {
    pub fn create(path: &Path, summary: &JobSummary) -> std::io::Result<SummaryFile> {
        SummaryFile::create_with(path, &summary.to_json())
    }

    pub fn update(&mut self, summary: &JobSummary) -> std::io::Result<()> {
        self.update_with(&summary.to_json())
    }

    /// Puts the final version in place and removes the spare.
    pub fn finish(self, summary: &JobSummary) -> std::io::Result<()> {
        self.finish_with(&summary.to_json())
    }

    fn create_with(path: &Path, text: &[u8]) -> std::io::Result<SummaryFile> {
        let current = std::fs::File::create(path)?;
        write_whole(&current, text)?;
        Ok(SummaryFile {
            path: path.to_path_buf(),
            spare_path: path.with_extension("json.next"),
            spare: None,
        })
    }

    fn update_with(&mut self, text: &[u8]) -> std::io::Result<()> {
        let spare = self.write_spare(text)?;
        let swapped = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.spare_path,
            rustix::fs::CWD,
            &self.path,
            rustix::fs::RenameFlags::EXCHANGE,
        );
        match swapped {
            // The spare's name now holds the previous version's inode: reopen it as the spare.
            Ok(()) => {
                drop(spare);
                self.spare = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&self.spare_path)
                    .ok();
                Ok(())
            }
            Err(_) => std::fs::rename(&self.spare_path, &self.path),
        }
    }

    fn finish_with(mut self, text: &[u8]) -> std::io::Result<()> {
        drop(self.write_spare(text)?);
        std::fs::rename(&self.spare_path, &self.path)
    }

    /// Writes `text` into the spare file (created if there is none) and returns its handle.
    fn write_spare(&mut self, text: &[u8]) -> std::io::Result<std::fs::File> {
        let spare = match self.spare.take() {
            Some(f) => f,
            None => std::fs::File::create(&self.spare_path)?,
        };
        write_whole(&spare, text)?;
        Ok(spare)
    }
}

fn write_whole(file: &std::fs::File, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(text, 0)?;
    file.set_len(text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::SummaryFile;

    #[test]
    fn updates_replace_the_summary_and_finish_leaves_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let mut file =
            SummaryFile::create_with(&path, b"version 1, the longest of them all").unwrap();
        for v in 2..6 {
            file.update_with(format!("version {v}").as_bytes()).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("version {v}")
            );
        }
        // Someone removes the summary while the job runs: the next update puts it back.
        std::fs::remove_file(&path).unwrap();
        file.update_with(b"version 6").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "version 6");
        file.finish_with(b"final").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "final");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["summary.json"], "no spare is left behind");
    }
}
