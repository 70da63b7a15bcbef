//! One claimed job's run on this node: it reads the pipeline, marks the job Running, hands
//! it to the executor, patches stage progress (at most once per `status_every`), and writes
//! how it ended. Every write carries the latest resourceVersion this run holds; a conflict
//! means someone else wrote the job, so the run reads it again and goes on only if it still
//! holds that attempt.

use super::status::{self, StopReason};
use crate::api::{ApiError, ClusterApi};
use crate::executor::{Assignment, JobExecutor, Outcome};
use crate::resources::{JobPhase, WardJob, WardJobStatus};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How many times a write is tried again after conflicts or API errors before the run gives
/// up writing (the job is then re-claimed once this node's Lease runs out, or stays as last
/// written).
const WRITE_TRIES: u32 = 8;

/// What the node and a run share: why the node stopped it, if it did.
pub(crate) type SharedStop = Arc<Mutex<Option<StopReason>>>;

pub(crate) fn stop_reason(stop: &SharedStop) -> Option<StopReason> {
    *stop.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run gave up the job: another node holds it, or it could not be written.
struct Gone;

/// Writes one attempt's status under the resourceVersion it last held.
struct Writer<A> {
    api: A,
    node: String,
    attempt: u32,
    job: WardJob,
    stop: SharedStop,
}

impl<A: ClusterApi> Writer<A> {
    fn name(&self) -> String {
        self.job.metadata.name.clone().unwrap_or_default()
    }

    /// Writes `status`: a full replace for a phase change, a merge patch for progress.
    async fn write(&mut self, status: WardJobStatus, replace: bool) -> Result<(), Gone> {
        let name = self.name();
        for _ in 0..WRITE_TRIES {
            if stop_reason(&self.stop) == Some(StopReason::Lost) {
                return Err(Gone);
            }
            let answer = if replace {
                let mut job = self.job.clone();
                job.status = Some(status.clone());
                self.api.replace_job_status(&job).await
            } else {
                let rv = self
                    .job
                    .metadata
                    .resource_version
                    .clone()
                    .unwrap_or_default();
                self.api.patch_job_status(&name, &rv, &status).await
            };
            match answer {
                Ok(job) => {
                    self.job = job;
                    return Ok(());
                }
                Err(ApiError::Conflict(_)) => {
                    let fresh = self.api.get_job(&name).await.map_err(|_| Gone)?;
                    if fresh.holder() != Some(self.node.as_str()) || fresh.attempt() != self.attempt
                    {
                        tracing::info!("job is no longer held by this attempt; not writing it");
                        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(StopReason::Lost);
                        return Err(Gone);
                    }
                    self.job = fresh;
                }
                Err(ApiError::NotFound(_)) => return Err(Gone),
                Err(e) => {
                    tracing::warn!(error = %e, "writing the job's status failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::warn!("gave up writing the job's status");
        Err(Gone)
    }

    /// The status as last written, for a change to build on.
    fn status(&self) -> WardJobStatus {
        self.job.status.clone().unwrap_or_default()
    }
}

pub(crate) struct RunContext<A, E> {
    pub api: A,
    pub executor: Arc<E>,
    pub node: String,
    pub job: WardJob,
    pub status_every: Duration,
    pub stop: SharedStop,
    pub stop_rx: watch::Receiver<bool>,
}

/// Runs one claimed attempt to its end.
pub(crate) async fn run_job<A: ClusterApi, E: JobExecutor>(cx: RunContext<A, E>) {
    let attempt = cx.job.attempt();
    let mut writer = Writer {
        api: cx.api.clone(),
        node: cx.node.clone(),
        attempt,
        job: cx.job.clone(),
        stop: cx.stop.clone(),
    };
    let pipeline = match cx.api.get_pipeline(&cx.job.spec.pipeline.object).await {
        Ok(p) => p,
        Err(e) => {
            let why = format!("pipeline {}: {e}", cx.job.spec.pipeline.object);
            tracing::warn!(%why, "cannot run the job");
            let outcome = match e {
                ApiError::NotFound(_) => Outcome::Failed(why),
                _ => Outcome::Retry(why),
            };
            finish(&mut writer, &outcome).await;
            return;
        }
    };
    let mut running = writer.status();
    running.phase = JobPhase::Running;
    running.started_at = Some(status::now());
    if writer.write(running, true).await.is_err() {
        return;
    }
    let assignment = Assignment {
        job: writer.job.clone(),
        pipeline,
        attempt,
        result_dir: writer.status().result.unwrap_or_default(),
    };
    let (progress_tx, mut progress_rx) = watch::channel(Vec::new());
    let execution = cx.executor.run(assignment, progress_tx, cx.stop_rx.clone());
    tokio::pin!(execution);
    let mut last_patch: Option<Instant> = None;
    let mut unsent = false;
    let mut progress_open = true;
    let outcome = loop {
        let next_patch = last_patch.map_or_else(Instant::now, |at| at + cx.status_every);
        tokio::select! {
            outcome = &mut execution => break outcome,
            changed = progress_rx.changed(), if progress_open => match changed {
                Ok(()) => unsent = true,
                Err(_) => progress_open = false,
            },
            _ = tokio::time::sleep_until(next_patch), if unsent => {
                let mut status = writer.status();
                status.stages = progress_rx.borrow_and_update().clone();
                unsent = false;
                last_patch = Some(Instant::now());
                if writer.write(status, false).await.is_err() {
                    // Lost: stop the run; nothing more is written.
                    let _ = execution.await;
                    return;
                }
            }
        }
    };
    // The stages as they ended go with the final write.
    let stages = progress_rx.borrow().clone();
    if !stages.is_empty() {
        let mut status = writer.status();
        status.stages = stages;
        writer.job.status = Some(status);
    }
    tracing::info!(?outcome, "run ended");
    finish(&mut writer, &outcome).await;
}

async fn finish<A: ClusterApi>(writer: &mut Writer<A>, outcome: &Outcome) {
    let stop = stop_reason(&writer.stop);
    if let Some(end) = status::ended(&writer.job, outcome, stop, &writer.node) {
        let _ = writer.write(end, true).await;
    }
}
