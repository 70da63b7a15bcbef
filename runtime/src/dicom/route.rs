//! What happens to a complete payload: its route's conditions are checked, each of its
//! pipelines runs as a job through the same runtime as `ward run`, and the DICOM files in the
//! outputs marked for export are sent to their destination, retried with back-off while it
//! is down. The outcome per file is written to `exports.json` in the job's directory.

use super::config::{AdapterConfig, Condition, Route};
use super::peer::Peer;
use super::scu::{self, ScuOptions};
use super::store::Storage;
use crate::engine::Engine;
use crate::jobs::{new_job_id, run_job, JobRequest, JobStatus, NoObserver};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Attempts to send one output before the export is given up (its files stay in the job).
const EXPORT_ATTEMPTS: u32 = 6;
const FIRST_RETRY: Duration = Duration::from_millis(500);

pub struct Dispatcher {
    engine: Arc<Engine>,
    storage: Storage,
    config: AdapterConfig,
}

/// One exported file, as recorded in `exports.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRecord {
    pub file: PathBuf,
    pub destination: String,
    pub ok: bool,
    pub status: Option<u16>,
    pub message: String,
    pub attempts: u32,
}

impl Dispatcher {
    pub fn new(engine: Arc<Engine>, storage: Storage, config: AdapterConfig) -> Dispatcher {
        Dispatcher {
            engine,
            storage,
            config,
        }
    }

    /// Starts the route's jobs on `payload`, each on a thread of its own.
    pub fn dispatch(self: &Arc<Self>, route: &Route, payload: &Path, calling: &str) {
        match conditions_met(&route.conditions, payload) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(payload = %payload.display(), "not run: the route's conditions are not met");
                return;
            }
            Err(why) => {
                tracing::warn!(payload = %payload.display(), reason = %why, "not run: the conditions cannot be checked");
                return;
            }
        }
        for pipeline in &route.pipelines {
            let me = self.clone();
            let route = route.clone();
            let pipeline = pipeline.clone();
            let payload = payload.to_path_buf();
            let tenant = calling.to_string();
            std::thread::spawn(move || me.run(&route, &pipeline, &payload, &tenant));
        }
    }

    fn run(&self, route: &Route, pipeline_file: &Path, payload: &Path, calling: &str) {
        let pipeline = match crate::pipeline::load(pipeline_file) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(pipeline = %pipeline_file.display(), error = %e, "the route's pipeline is not valid");
                return;
            }
        };
        let job_id = new_job_id();
        let job_dir = self.storage.jobs().join(&job_id);
        let request = JobRequest {
            pipeline,
            payload: payload.to_path_buf(),
            job_dir: job_dir.clone(),
            job_id: job_id.clone(),
            tenant: route.ae_title.clone(),
            parameters: Default::default(),
            datasets: Default::default(),
            cpu_slots: std::thread::available_parallelism().map_or(2, |n| n.get() as u32),
        };
        tracing::info!(job = %job_id, calling, pipeline = %pipeline_file.display(), "job started for a received payload");
        let summary = match run_job(&self.engine, &request, Arc::new(NoObserver)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(job = %job_id, error = %e, "the job could not run");
                return;
            }
        };
        if summary.status != JobStatus::Succeeded {
            tracing::warn!(job = %job_id, failure = ?summary.failure, "job failed; nothing exported");
            return;
        }
        let mut records = Vec::new();
        for export in &route.exports {
            let dir = job_dir
                .join("results")
                .join(&export.stage)
                .join(&export.output);
            let destination = &self.config.destinations[export.destination];
            records.extend(self.export(&dir, destination));
        }
        if !route.exports.is_empty() {
            let path = job_dir.join("exports.json");
            let text = serde_json::to_string_pretty(&records).unwrap_or_default();
            let temp = job_dir.join(".exports.json.tmp");
            if let Err(e) = std::fs::write(&temp, text).and_then(|()| std::fs::rename(&temp, &path))
            {
                tracing::error!(job = %job_id, error = %e, "cannot record the exports");
            }
        }
    }

    /// Sends every DICOM file under `dir`, retrying the ones not yet stored.
    fn export(&self, dir: &Path, destination: &super::config::Destination) -> Vec<ExportRecord> {
        let mut files = Vec::new();
        collect_dicom(dir, &mut files);
        files.sort();
        let peer = Peer {
            ae_title: destination.ae_title.clone(),
            host: destination.host.clone(),
            port: destination.port,
        };
        let options = ScuOptions {
            calling_ae: self.config.ae_title.clone(),
            ..ScuOptions::default()
        };
        let mut records: Vec<ExportRecord> = files
            .iter()
            .map(|f| ExportRecord {
                file: f.clone(),
                destination: destination.name.clone(),
                ok: false,
                status: None,
                message: "not sent yet".into(),
                attempts: 0,
            })
            .collect();
        let mut wait = FIRST_RETRY;
        for attempt in 1..=EXPORT_ATTEMPTS {
            let todo: Vec<PathBuf> = records
                .iter()
                .filter(|r| !r.ok)
                .map(|r| r.file.clone())
                .collect();
            if todo.is_empty() {
                break;
            }
            match scu::send_files(&options, &peer, &todo, |_| {}) {
                Ok(outcomes) => {
                    for (file, outcome) in todo.iter().zip(outcomes) {
                        if let Some(r) = records.iter_mut().find(|r| &r.file == file) {
                            r.attempts = attempt;
                            r.ok = outcome.is_success();
                            r.status = outcome.status;
                            r.message = outcome.message.clone();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(destination = %destination.name, attempt, error = %e, "export failed; retrying");
                    for r in records.iter_mut().filter(|r| !r.ok) {
                        r.attempts = attempt;
                        r.message = e.to_string();
                    }
                }
            }
            if records.iter().all(|r| r.ok) || attempt == EXPORT_ATTEMPTS {
                break;
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        records
    }
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

/// Every instance of the payload must meet every condition.
fn conditions_met(conditions: &[Condition], payload: &Path) -> Result<bool, String> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let entries = std::fs::read_dir(payload).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let obj = dicom_object::OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .open_file(entry.path())
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for c in conditions {
            let (Condition::Equals { keyword, .. } | Condition::Below { keyword, .. }) = c;
            let element = obj.element_by_name(keyword).ok();
            let met = match (c, element) {
                (_, None) => false,
                (Condition::Equals { value, .. }, Some(e)) => e
                    .to_str()
                    .is_ok_and(|s| s.trim_end_matches(['\0', ' ']) == value),
                (Condition::Below { value, .. }, Some(e)) => {
                    e.to_float64().is_ok_and(|v| v < *value)
                }
            };
            if !met {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
