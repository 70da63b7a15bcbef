//! What happens to a complete payload in the standalone adapter: its route's conditions are
//! checked, a job for each of its pipelines is queued ([`super::queue`], on disk), at most
//! `max-jobs` of them run at once through the same runtime as `ward run`, and the DICOM
//! files in the outputs marked for export are recorded and sent to their destination
//! ([`export`]).

use super::config::{AdapterConfig, Condition, Route};
use super::export;
use super::pipelines::RoutePipelines;
use super::queue::{Entry, JobQueue, QueuedJob};
use super::store::{Refused, Storage};
use crate::engine::Engine;
use crate::jobs::{new_job_id, run_job, JobRequest, JobStatus, NoObserver};
use crate::pipeline::Pipeline;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
    pipelines: RoutePipelines,
    queue: JobQueue,
    /// Jobs running now.
    running: AtomicUsize,
    /// CPU slots each job's stages share: the cores divided among `max-jobs`.
    cpu_slots: u32,
}

/// Where the adapter keeps its queue, beside `incoming/`, `payloads/` and `jobs/`.
pub fn queue_dir(storage: &Storage) -> PathBuf {
    storage.root.join("queue")
}

impl Dispatcher {
    /// Opens the job queue (with what a previous run left in it) and starts its `max-jobs`
    /// runners.
    pub fn start(
        engine: Arc<Engine>,
        storage: Storage,
        config: AdapterConfig,
        pipelines: RoutePipelines,
    ) -> std::io::Result<Arc<Dispatcher>> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let max_jobs = config
            .max_jobs
            .unwrap_or_else(|| pipelines.default_max_jobs(cores));
        let queue = JobQueue::open(&queue_dir(&storage))?;
        let resumed = queue.waiting();
        let dispatcher = Arc::new(Dispatcher {
            engine,
            storage,
            config,
            pipelines,
            queue,
            running: AtomicUsize::new(0),
            cpu_slots: (cores / max_jobs).max(1) as u32,
        });
        tracing::info!(
            max_jobs,
            cpu_slots = dispatcher.cpu_slots,
            resumed,
            "job queue open"
        );
        for n in 0..max_jobs {
            let me = dispatcher.clone();
            std::thread::Builder::new()
                .name(format!("dicom-job-{n}"))
                .spawn(move || loop {
                    let entry = me.queue.take();
                    me.run_entry(&entry);
                })?;
        }
        Ok(dispatcher)
    }

    /// Queues a job for each of the route's pipelines on `payload`, if its conditions are met.
    pub fn dispatch(&self, route: &Route, payload: &Path, calling: &str) {
        match conditions_met(&route.conditions, payload) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(payload = %payload_id(payload), route = %route.ae_title, "not run: the route's conditions are not met");
                return;
            }
            Err(why) => {
                tracing::warn!(payload = %payload_id(payload), reason = %why, "not run: the conditions cannot be checked");
                return;
            }
        }
        for pipeline in &route.pipelines {
            let job = QueuedJob {
                job_id: new_job_id(),
                payload: payload.to_path_buf(),
                route: route.ae_title.clone(),
                pipeline: pipeline.clone(),
                calling: calling.to_string(),
                queued_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
            };
            let job_id = job.job_id.clone();
            match self.queue.push(job) {
                Ok(waiting) => {
                    tracing::info!(job = %job_id, payload = %payload_id(payload), pipeline = %pipeline.display(), waiting, "job queued")
                }
                Err(e) => {
                    tracing::error!(payload = %payload_id(payload), pipeline = %pipeline.display(), error = %e, "cannot queue the job")
                }
            }
        }
    }

    /// Runs a queued job (unless it had already finished before a restart), records its
    /// exports, takes it off the queue, then delivers the exports.
    fn run_entry(&self, entry: &Entry) {
        let to_deliver = self.run(&entry.job);
        if let Err(e) = self.queue.done(entry) {
            tracing::error!(job = %entry.job.job_id, error = %e, "cannot take the job off the queue");
        }
        if let Some(job_dir) = to_deliver {
            export::deliver(&self.config, &job_dir);
        }
    }

    /// The job's directory when it has exports to deliver.
    fn run(&self, job: &QueuedJob) -> Option<PathBuf> {
        let Some(route_index) = self
            .config
            .routes
            .iter()
            .position(|r| r.ae_title == job.route)
        else {
            tracing::error!(job = %job.job_id, route = %job.route, "the queued job's route is no longer configured; it is dropped");
            return None;
        };
        let route = &self.config.routes[route_index];
        let Some(pipeline) = self.pipelines.find(route_index, &job.pipeline) else {
            tracing::error!(job = %job.job_id, pipeline = %job.pipeline.display(), "the queued job's pipeline is no longer on its route; it is dropped");
            return None;
        };
        let job_dir = self.storage.jobs().join(&job.job_id);
        let status = match finished_status(&job_dir) {
            Some(status) => {
                tracing::info!(job = %job.job_id, status = ?status, "job finished before the restart; not run again");
                status
            }
            None => {
                if job_dir.exists() {
                    tracing::info!(job = %job.job_id, "job interrupted by a restart; it runs again from the start");
                    if let Err(e) = std::fs::remove_dir_all(&job_dir) {
                        tracing::error!(job = %job.job_id, error = %e, "cannot clear the interrupted job");
                        return None;
                    }
                }
                self.run_job(job, pipeline, &job_dir)?
            }
        };
        if status != JobStatus::Succeeded {
            return None;
        }
        if route.exports.is_empty() || job_dir.join("exports.json").exists() {
            // Nothing to export, or recorded before a restart (resumed at start-up).
            return None;
        }
        let outputs: Vec<(PathBuf, &super::config::Destination)> = route
            .exports
            .iter()
            .filter(|e| {
                pipeline
                    .stage(&e.stage)
                    .is_some_and(|s| s.outputs.iter().any(|o| o.name == e.output))
            })
            .map(|e| {
                (
                    job_dir.join("results").join(&e.stage).join(&e.output),
                    &self.config.destinations[e.destination],
                )
            })
            .collect();
        if outputs.is_empty() {
            return None;
        }
        if let Err(e) = export::queue(&job_dir, &outputs) {
            tracing::error!(job = %job.job_id, error = %e, "cannot queue the exports");
            return None;
        }
        Some(job_dir)
    }

    /// Runs the job; its final status, none when it could not run at all.
    fn run_job(&self, job: &QueuedJob, pipeline: &Pipeline, job_dir: &Path) -> Option<JobStatus> {
        let request = JobRequest {
            pipeline: pipeline.clone(),
            payload: job.payload.clone(),
            job_dir: job_dir.to_path_buf(),
            job_id: job.job_id.clone(),
            tenant: job.route.clone(),
            parameters: Default::default(),
            datasets: Default::default(),
            cpu_slots: self.cpu_slots,
            cancel: None,
            preempted: None,
        };
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        tracing::info!(job = %job.job_id, payload = %payload_id(&job.payload), pipeline = %pipeline.name, calling = %job.calling, running, waiting = self.queue.waiting(), "job started");
        let started = Instant::now();
        let result = run_job(&self.engine, &request, Arc::new(NoObserver));
        self.running.fetch_sub(1, Ordering::SeqCst);
        let duration_s = started.elapsed().as_secs_f64();
        match result {
            Ok(summary) => {
                let outcome = match summary.status {
                    JobStatus::Succeeded => "succeeded",
                    JobStatus::Failed => "failed",
                    JobStatus::Running => "running",
                };
                if summary.status == JobStatus::Succeeded {
                    tracing::info!(job = %job.job_id, outcome = %outcome, duration_s, "job finished");
                } else {
                    tracing::warn!(job = %job.job_id, outcome = %outcome, duration_s, failure = ?summary.failure, "job finished; nothing exported");
                }
                Some(summary.status)
            }
            Err(e) => {
                tracing::error!(job = %job.job_id, outcome = %"not run", duration_s, error = %e, "job finished");
                None
            }
        }
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

/// The payload's id: its directory's name under `payloads/`.
pub fn payload_id(payload: &Path) -> String {
    payload.file_name().map_or_else(
        || payload.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The status of the job in `job_dir` once it has finished (succeeded or failed); none when
/// it never started or was still running when the process died.
fn finished_status(job_dir: &Path) -> Option<JobStatus> {
    let bytes = std::fs::read(job_dir.join("summary.json")).ok()?;
    let summary: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match summary["status"].as_str()? {
        "succeeded" => Some(JobStatus::Succeeded),
        "failed" => Some(JobStatus::Failed),
        _ => None,
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
