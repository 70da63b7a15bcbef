//! What happens to a complete payload: its route's conditions are checked, each of its
//! pipelines runs as a job through the same runtime as `ward run`, and the DICOM files in the
//! outputs marked for export are queued and sent to their destination ([`export`]).

use super::config::{AdapterConfig, Condition, Route};
use super::export;
use super::store::{Refused, Storage};
use crate::engine::Engine;
use crate::jobs::{new_job_id, run_job, JobRequest, JobStatus, NoObserver};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What becomes of a complete payload: run here ([`Dispatcher`]), or handed to the job
/// service when `ward serve` hosts the adapter.
pub trait PayloadHandler: Send + Sync {
    fn payload_complete(&self, route: &Route, payload: &Path, calling: &str);

    /// Before `bytes` more of association `association` (to AE title `called`) are written:
    /// a refusal (the storage quota of whoever owns the route) refuses the instance.
    fn admit(&self, _called: &str, _association: &str, _bytes: u64) -> Result<(), Refused> {
        Ok(())
    }

    /// Association `association` has ended; what `admit` let it write and no payload took
    /// is given back.
    fn association_ended(&self, _association: &str) {}
}

impl PayloadHandler for Arc<Dispatcher> {
    fn payload_complete(&self, route: &Route, payload: &Path, calling: &str) {
        self.dispatch(route, payload, calling);
    }
}

pub struct Dispatcher {
    engine: Arc<Engine>,
    storage: Storage,
    config: AdapterConfig,
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
            cancel: None,
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
        if route.exports.is_empty() {
            return;
        }
        let outputs: Vec<(PathBuf, &super::config::Destination)> = route
            .exports
            .iter()
            .map(|e| {
                (
                    job_dir.join("results").join(&e.stage).join(&e.output),
                    &self.config.destinations[e.destination],
                )
            })
            .collect();
        if let Err(e) = export::queue(&job_dir, &outputs) {
            tracing::error!(job = %job_id, error = %e, "cannot queue the exports");
            return;
        }
        export::deliver(&self.config, &job_dir);
    }

    /// Resumes the exports a previous run of Ward left pending, each on a thread of its own.
    pub fn resume_exports(self: &Arc<Self>) {
        let Ok(jobs) = std::fs::read_dir(self.storage.jobs()) else {
            return;
        };
        for job in jobs.flatten() {
            let dir = job.path();
            if export::has_pending(&dir) {
                tracing::info!(job = %dir.display(), "resuming pending exports");
                let me = self.clone();
                std::thread::spawn(move || export::deliver(&me.config, &dir));
            }
        }
    }
}

/// Every instance of the payload must meet every condition.
pub fn conditions_met(conditions: &[Condition], payload: &Path) -> Result<bool, String> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let entries = std::fs::read_dir(payload).map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let facts = super::instance::inspect_instance(&entry.path())
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        for c in conditions {
            let (Condition::Equals { keyword, .. } | Condition::Below { keyword, .. }) = c;
            let met = match (c, facts.by_keyword(keyword)) {
                (_, None) => false,
                (Condition::Equals { value, .. }, Some(text)) => text == value,
                (Condition::Below { value, .. }, Some(text)) => text
                    .split('\\')
                    .next()
                    .and_then(|first| first.trim().parse::<f64>().ok())
                    .is_some_and(|v| v < *value),
            };
            if !met {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
