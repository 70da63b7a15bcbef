//! The [`JobExecutor`] of `ward node`: a claimed `WardJob` run by Ward's own job runner, as
//! `ward run` and `ward serve` run jobs — its pipeline read from the `WardPipeline` as if
//! it were a file in the pipeline's components directory, its payload read-only on shared
//! storage, its results in the attempt's own directory there.

use super::progress::StageProgress;
use super::shared::SharedRoot;
use crate::engine::Engine;
use crate::jobs::{run_job, FailureKind, JobRequest, JobStatus, JobSummary};
use crate::pipeline::Pipeline;
use crate::registry::resolve::{resolve_pipeline, uses_registry};
use crate::registry::{ComponentStore, Registry, TrustPolicy};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ward_cluster::executor::{Assignment, JobExecutor, Outcome, ProgressSender, StopReceiver};

/// What a node verifies registry components with: the registry, its local store of
/// verified components, and the keys the node trusts.
pub struct RegistryAccess {
    pub registry: Registry,
    pub store: ComponentStore,
    pub policy: TrustPolicy,
}

/// Runs claimed jobs with [`run_job`].
pub struct RunnerExecutor {
    engine: Arc<Engine>,
    shared: SharedRoot,
    /// `None`: this node runs no registry components (it was given no keys to trust).
    registry: Option<Arc<RegistryAccess>>,
}

impl RunnerExecutor {
    pub fn new(
        engine: Arc<Engine>,
        shared: SharedRoot,
        registry: Option<Arc<RegistryAccess>>,
    ) -> RunnerExecutor {
        RunnerExecutor {
            engine,
            shared,
            registry,
        }
    }
}

/// Why a job could not be started, and whether another attempt could do better.
enum NotRun {
    Failed(String),
    Retry(String),
}

impl From<NotRun> for Outcome {
    fn from(n: NotRun) -> Outcome {
        match n {
            NotRun::Failed(why) => Outcome::Failed(why),
            NotRun::Retry(why) => Outcome::Retry(why),
        }
    }
}

impl JobExecutor for RunnerExecutor {
    async fn run(
        &self,
        assignment: Assignment,
        progress: ProgressSender,
        mut stop: StopReceiver,
    ) -> Outcome {
        if *stop.borrow_and_update() {
            return Outcome::Stopped;
        }
        // The runner reads a flag between stages and running stages read it too; the
        // node's stop signal sets it.
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let relay = tokio::spawn(async move {
            while stop.changed().await.is_ok() {
                if *stop.borrow_and_update() {
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        let engine = self.engine.clone();
        let shared = self.shared.clone();
        let registry = self.registry.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let request = prepare(&assignment, &shared, registry.as_deref(), cancel.clone())?;
            let names: Vec<String> = request
                .pipeline
                .stages
                .iter()
                .map(|s| s.name.clone())
                .collect();
            let observer = Arc::new(StageProgress::new(&names, progress));
            tracing::info!(job = %request.job_id, attempt = assignment.attempt,
                result = %request.job_dir.display(), "job starts");
            run_job(&engine, &request, observer).map_err(|e| NotRun::Failed(e.to_string()))
        })
        .await;
        relay.abort();
        match ran {
            Ok(Ok(summary)) => outcome_of(&summary),
            Ok(Err(not_run)) => not_run.into(),
            Err(e) => Outcome::Failed(format!("the job runner ended abnormally: {e}")),
        }
    }
}

/// The job request for `assignment`, every path checked to be on the shared volume.
fn prepare(
    assignment: &Assignment,
    shared: &SharedRoot,
    registry: Option<&RegistryAccess>,
    cancel: Arc<AtomicBool>,
) -> Result<JobRequest, NotRun> {
    let job = &assignment.job;
    let spec = &job.spec;
    let failed = |e: super::SharedPathError| NotRun::Failed(e.to_string());
    let payload = shared
        .check("payload", &spec.payload.path)
        .map_err(failed)?;
    if !payload.is_dir() {
        return Err(NotRun::Failed(format!(
            "payload {}: not a directory on the shared volume (payload '{}')",
            payload.display(),
            spec.payload.id
        )));
    }
    let job_dir = shared
        .check("results", &assignment.result_dir)
        .map_err(failed)?;
    let components = shared
        .check(
            "components directory",
            &assignment.pipeline.spec.components_dir,
        )
        .map_err(failed)?;
    let datasets = spec
        .datasets
        .iter()
        .map(|(name, dir)| Ok((name.clone(), shared.check("dataset", dir)?)))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    let pipeline = stored_pipeline(assignment, &components, registry)?;
    // A directory left by this attempt on a node that died before it reported is not
    // reused: the attempt starts over in it.
    if job_dir.exists() {
        std::fs::remove_dir_all(&job_dir).map_err(|e| {
            NotRun::Failed(format!(
                "results {}: cannot remove what an interrupted run left: {e}",
                job_dir.display()
            ))
        })?;
    }
    if let Some(parent) = job_dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| NotRun::Failed(format!("results {}: {e}", parent.display())))?;
    }
    Ok(JobRequest {
        pipeline,
        payload,
        job_dir,
        job_id: job.metadata.name.clone().unwrap_or_default(),
        tenant: spec.tenant.clone(),
        parameters: Default::default(),
        datasets,
        cpu_slots: spec.requests.cpu.max(1),
        cancel: Some(cancel),
        // Pre-emption is the embedded scheduler's; a node runs what the cluster gives it.
        preempted: None,
    })
}

/// The job's pipeline, its registry components verified at the digests the control plane
/// pinned.
fn stored_pipeline(
    assignment: &Assignment,
    components: &std::path::Path,
    registry: Option<&RegistryAccess>,
) -> Result<Pipeline, NotRun> {
    let spec = &assignment.pipeline.spec;
    let mut pipeline = crate::pipeline::parse_stored(components, &spec.name, &spec.document)
        .map_err(|why| {
            NotRun::Failed(format!(
                "pipeline {} (WardPipeline {}): {why}",
                spec.name, assignment.job.spec.pipeline.object
            ))
        })?;
    if !uses_registry(&pipeline) {
        return Ok(pipeline);
    }
    let Some(access) = registry else {
        return Err(NotRun::Failed(format!(
            "pipeline {}: it has registry components, and this node trusts no keys to verify them with (ward node --trust KEY)",
            spec.name
        )));
    };
    for stage in &mut pipeline.stages {
        let Some(reg) = &mut stage.component.registry else {
            continue;
        };
        // The control plane's pin is what runs, whatever the document's tag names now.
        if let Some(pin) = spec
            .components
            .iter()
            .find(|p| p.operator == stage.name && p.reference == reg.reference)
        {
            reg.manifest_digest = Some(pin.digest.clone());
        }
    }
    resolve_pipeline(
        &mut pipeline,
        &access.registry,
        &access.store,
        &access.policy,
    )
    .map_err(|e| {
        let why = format!("registry component refused: {e}");
        // A registry that could not be reached may answer next time; a failed check
        // will not.
        if e.source.check() == "fetch" {
            NotRun::Retry(why)
        } else {
            NotRun::Failed(why)
        }
    })?;
    Ok(pipeline)
}

/// How a finished run reads to the node.
fn outcome_of(summary: &JobSummary) -> Outcome {
    if summary.status == JobStatus::Succeeded {
        return Outcome::Succeeded;
    }
    let Some(failure) = &summary.failure else {
        return Outcome::Failed("the job failed".into());
    };
    if failure.reason.kind == FailureKind::Cancelled {
        return Outcome::Stopped;
    }
    // Whether trying again is worth it is the node's to decide from the attempts left:
    // only a cause outside the job (a registry) asks for a retry, and those end before
    // any stage runs.
    Outcome::Failed(match &failure.stage {
        Some(stage) => format!("stage '{stage}': {}", failure.reason.message),
        None => failure.reason.message.clone(),
    })
}
