//! Sending a job's results to their destinations, durably: what is to be sent is written to
//! `exports.json` in the job's directory before the first attempt and rewritten after every
//! attempt, so a destination that is down, or a restart of Ward, loses nothing. Files not yet
//! stored are retried with back-off until they are, or until `export-retry-for` has passed.
//! The same record is copied into the job's `summary.json` under `exports`.

use super::config::{AdapterConfig, Destination};
use super::peer::Peer;
use super::scu::{self, ScuOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

/// One file to export and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRecord {
    pub file: PathBuf,
    /// The destination's name in the configuration.
    pub destination: String,
    /// Stored by the destination.
    pub ok: bool,
    /// Still to be tried.
    pub pending: bool,
    pub status: Option<u16>,
    pub message: String,
    pub attempts: u32,
    /// Seconds since the Unix epoch when the export was queued.
    pub queued_unix: f64,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Queues every DICOM file under each (output directory, destination) of a finished job.
pub fn queue(job_dir: &Path, outputs: &[(PathBuf, &Destination)]) -> std::io::Result<()> {
    let mut records = Vec::new();
    for (dir, destination) in outputs {
        let mut files = Vec::new();
        collect_dicom(dir, &mut files);
        files.sort();
        records.extend(files.into_iter().map(|file| ExportRecord {
            file,
            destination: destination.name.clone(),
            ok: false,
            pending: true,
            status: None,
            message: "queued".into(),
            attempts: 0,
            queued_unix: now_unix(),
        }));
    }
    save(job_dir, &records)
}

/// Whether the job at `job_dir` has files still to export.
pub fn has_pending(job_dir: &Path) -> bool {
    load(job_dir).is_ok_and(|r| r.iter().any(|r| r.pending))
}

/// Sends what is pending for the job at `job_dir` until it is all stored or its time is up.
pub fn deliver(config: &AdapterConfig, job_dir: &Path) {
    let mut records = match load(job_dir) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(job = %job_dir.display(), error = %e, "cannot read the exports");
            return;
        }
    };
    let options = ScuOptions {
        calling_ae: config.ae_title.clone(),
        ..ScuOptions::default()
    };
    let mut wait = FIRST_RETRY;
    let started = Instant::now();
    loop {
        let mut names: Vec<String> = records
            .iter()
            .filter(|r| r.pending)
            .map(|r| r.destination.clone())
            .collect();
        names.dedup();
        for name in names {
            attempt(config, &options, job_dir, &name, &mut records);
        }
        let waited_long_enough = started.elapsed() >= config.export_retry_for;
        if waited_long_enough {
            let left = records.iter().filter(|r| r.pending).count();
            if left > 0 {
                tracing::warn!(job = %job_dir.display(), files = left, "exports given up: export-retry-for has passed");
            }
            for r in records.iter_mut().filter(|r| r.pending) {
                r.pending = false;
                r.message = format!("given up after {} attempts: {}", r.attempts, r.message);
            }
        }
        if let Err(e) = save(job_dir, &records) {
            tracing::error!(job = %job_dir.display(), error = %e, "cannot record the exports");
        }
        if !records.iter().any(|r| r.pending) {
            return;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(LONGEST_RETRY);
    }
}

/// One association to destination `name` with every file pending for it.
fn attempt(
    config: &AdapterConfig,
    options: &ScuOptions,
    job_dir: &Path,
    name: &str,
    records: &mut [ExportRecord],
) {
    let todo: Vec<usize> = (0..records.len())
        .filter(|&i| records[i].pending && records[i].destination == name)
        .collect();
    let Some(destination) = config.destinations.iter().find(|d| d.name == name) else {
        for &i in &todo {
            records[i].pending = false;
            records[i].message = format!("destination '{name}' is no longer configured");
        }
        return;
    };
    let peer = Peer {
        ae_title: destination.ae_title.clone(),
        host: destination.host.clone(),
        port: destination.port,
    };
    let files: Vec<PathBuf> = todo.iter().map(|&i| records[i].file.clone()).collect();
    let attempt = todo
        .iter()
        .map(|&i| records[i].attempts + 1)
        .max()
        .unwrap_or(1);
    let job = job_dir.file_name().unwrap_or_default().to_string_lossy();
    match scu::send_files(options, &peer, &files, |_| {}) {
        Ok(outcomes) => {
            let mut sent = 0;
            for (&i, outcome) in todo.iter().zip(outcomes) {
                let r = &mut records[i];
                r.attempts += 1;
                r.ok = outcome.is_success();
                r.pending = !r.ok;
                r.status = outcome.status;
                r.message = outcome.message.clone();
                sent += usize::from(r.ok);
            }
            let refused = todo.len() - sent;
            if refused == 0 {
                tracing::info!(job = %job, destination = %name, ae_title = %destination.ae_title, attempt, files = sent, "export sent");
            } else {
                tracing::warn!(job = %job, destination = %name, ae_title = %destination.ae_title, attempt, files = sent, refused, "export refused in part; what was refused will be retried");
            }
        }
        Err(e) => {
            tracing::warn!(job = %job, destination = %name, ae_title = %destination.ae_title, attempt, error = %e, "export failed; it will be retried");
            for &i in &todo {
                records[i].attempts += 1;
                records[i].message = e.to_string();
            }
        }
    }
}

fn load(job_dir: &Path) -> std::io::Result<Vec<ExportRecord>> {
    let text = std::fs::read_to_string(job_dir.join("exports.json"))?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// Writes the `exports` of `summary.json`, then `exports.json` (each replaced atomically):
/// whoever sees `exports.json` settle finds the summary already up to date.
fn save(job_dir: &Path, records: &[ExportRecord]) -> std::io::Result<()> {
    let summary_path = job_dir.join("summary.json");
    let mut summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path)?).map_err(std::io::Error::other)?;
    if let Some(map) = summary.as_object_mut() {
        map.insert(
            "exports".into(),
            serde_json::to_value(records).map_err(std::io::Error::other)?,
        );
    }
    write_atomically(
        &summary_path,
        &serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other)?,
    )?;
    write_atomically(
        &job_dir.join("exports.json"),
        &serde_json::to_vec_pretty(records).map_err(std::io::Error::other)?,
    )
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = path.with_extension("json.tmp");
    std::fs::write(&temp, bytes)?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, path)
}

fn collect_dicom(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_dicom(&path, out);
        } else if kind.is_file() && is_dicom_file(&path) {
            out.push(path);
        }
    }
}

fn is_dicom_file(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}
