//! The job runner: loads every component first, then runs stages whose inputs are ready
//! concurrently (bounded by CPU slots; stages joined by ports start together), skips the
//! dependents of a failed stage, and keeps the summary on disk current at every transition.

use super::outcome::{FailureKind, FailureReason, StageStatus};
use super::stage_run::{run_stage_then, QuotaExceeded, StageInvocation, StageRunResult};
use super::summary::{JobFailure, JobStatus, JobSummary, SummaryFile};
use crate::engine::{Engine, StageComponent};
use crate::host::bindings::context::JobInfo;
use crate::host::{ProgressFn, StageLog};
use crate::nn::{DeclaredModel, InferenceGrant};
use crate::pipeline::{Location, Pipeline, StageSpec};
use crate::ports::PortNetwork;
use crate::volumes::{
    abbreviate, clear_dir, plan_mounts, remove_escaping_symlinks, tree_digest, JobLayout, Mount,
    VolumeError, VolumeKind, WalkError,
};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use super::request::io_error;
pub use super::request::{JobError, JobObserver, JobRequest, NoObserver};

/// The most a stage may write to its log (its own lines, stdout and stderr together).
pub const LOG_BUDGET_BYTES: u64 = 8 << 20;
/// Native stack of a stage thread; wasm frames use at most the engine's max_wasm_stack.
const STAGE_THREAD_STACK: usize = 16 << 20;

/// Runs `req` to its end and returns the final summary (also written to `summary.json`).
pub fn run_job(
    engine: &Engine,
    req: &JobRequest,
    observer: Arc<dyn JobObserver>,
) -> Result<JobSummary, JobError> {
    if !req.payload.is_dir() {
        return Err(JobError::PayloadMissing {
            path: req.payload.clone(),
        });
    }
    if let Some(s) = req
        .pipeline
        .stages
        .iter()
        .find(|s| s.requests.gpu > 0 && engine.gpu().info().is_none())
    {
        return Err(JobError::NoGpu {
            location: s.location.clone(),
            operator: s.name.clone(),
            gpus: s.requests.gpu,
        });
    }
    check_ports_budget(engine, &req.pipeline)?;
    let components = load_components(engine, &req.pipeline)?;
    let inference = inference_grants(engine, req, &components)?;
    observer.components_ready();
    let layout = JobLayout {
        root: req.job_dir.clone(),
    };
    let mounts = plan_job_mounts(req, &layout)?;
    prepare_job_dir(&layout)?;

    let started = Instant::now();
    let job_span = tracing::info_span!("job", job = %req.job_id, tenant = %req.tenant, pipeline = %req.pipeline.name);
    let _job = job_span.enter();
    let digests: Vec<String> = components.iter().map(|c| c.digest.clone()).collect();
    let mut summary = JobSummary::pending(req, &digests, &layout, tree_digest(&req.payload)?);
    let summary_path = layout.summary_path();
    let mut summary_file =
        SummaryFile::create(&summary_path, &summary).map_err(io_error(&summary_path))?;

    let stages = &req.pipeline.stages;
    // A stage's pool slot is released only after its result is reported, so at most twice
    // the running stages hold slots at once.
    let slots = req
        .cpu_slots
        .clamp(1, (engine.max_concurrent_stages() / 2).max(1));
    let need = |i: usize| i64::from(stages[i].requests.cpu.clamp(1, slots));
    let mut status = vec![StageStatus::Pending; stages.len()];
    let mut free = i64::from(slots);
    let (done_tx, done_rx) = mpsc::channel::<(usize, StageRunResult, u64)>();
    let network = PortNetwork::new(&req.pipeline);
    // A stage that failed only because a port peer failed: the job's failure if no stage
    // failed of itself.
    let mut peer_caused: Option<JobFailure> = None;

    std::thread::scope(|scope| {
        let mut running = 0;
        loop {
            let cancelled = req
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
            if cancelled {
                let preempted = req
                    .preempted
                    .as_ref()
                    .is_some_and(|p| p.load(std::sync::atomic::Ordering::Relaxed));
                cancel_pending(&mut summary, &mut status, &stages[..], preempted);
            }
            for first in 0..stages.len() {
                // A stage starts with every stage joined to it by ports, once all of them
                // have their volumes. A set wider than the CPU slots starts alone.
                let group: Vec<usize> = std::iter::once(first)
                    .chain(stages[first].port_peers.iter().copied())
                    .collect();
                let ready = group.iter().all(|&g| {
                    status[g] == StageStatus::Pending
                        && stages[g]
                            .depends_on
                            .iter()
                            .all(|&d| status[d] == StageStatus::Succeeded)
                });
                let group_need: i64 = group.iter().map(|&g| need(g)).sum();
                if !ready || (group_need > free && running > 0) {
                    continue;
                }
                for i in group {
                    free -= need(i);
                    running += 1;
                    status[i] = StageStatus::Running;
                    let record = &mut summary.stages[i];
                    record.status = StageStatus::Running;
                    record.started_at_s = Some(started.elapsed().as_secs_f64());
                    update_summary(&mut summary_file, &summary);
                    observer.stage_started(&stages[i].name);

                    let log = match prepare_stage(&mounts[i], &layout.log_path(&stages[i].name)) {
                        Ok(log) => log,
                        Err(reason) => {
                            if let Some(network) = &network {
                                network.finish(i, Some(&reason.message));
                            }
                            // Reported like any other ending, on the next turn of the loop.
                            let _ = done_tx.send((i, StageRunResult::failed(reason), 0));
                            continue;
                        }
                    };
                    let mut invocation =
                        invocation(req, i, &components[i], &mounts[i], log.clone(), &observer);
                    invocation.ports = network.clone().map(|n| (n, i));
                    invocation.inference = inference[i].clone();
                    let tx = done_tx.clone();
                    let stage_span =
                        tracing::info_span!(parent: &job_span, "stage", stage = %stages[i].name);
                    let spawned = std::thread::Builder::new()
                        .name(format!("stage-{}", stages[i].name))
                        .stack_size(STAGE_THREAD_STACK)
                        .spawn_scoped(scope, move || {
                            let _span = stage_span.enter();
                            run_and_report(engine, &invocation, &log, i, &tx);
                        });
                    if let Err(e) = spawned {
                        let reason = FailureReason::new(
                            FailureKind::Host,
                            format!("cannot start the stage's thread: {e}"),
                        );
                        if let Some(network) = &network {
                            network.finish(i, Some(&reason.message));
                        }
                        let _ = done_tx.send((i, StageRunResult::failed(reason), 0));
                    }
                }
            }
            if running == 0 {
                break;
            }
            let (i, mut result, dropped) = done_rx.recv().expect("a running stage reports back");
            if let Some(reason) = check_results(&mounts[i], &result) {
                result.result = Err(reason);
            }
            running -= 1;
            free += need(i);
            status[i] = if result.result.is_ok() {
                StageStatus::Succeeded
            } else {
                StageStatus::Failed
            };
            let record = &mut summary.stages[i];
            record.status = status[i];
            record.instantiate_ms = Some(result.instantiate_time.as_secs_f64() * 1e3);
            record.duration_s = Some((result.instantiate_time + result.run_time).as_secs_f64());
            record.memory_peak_bytes = Some(result.memory_peak);
            record.log_dropped_bytes = dropped;
            if let Err(reason) = result.result {
                record.reason = Some(reason.clone());
                let failure = JobFailure {
                    stage: Some(stages[i].name.clone()),
                    reason,
                };
                let after_peer = network
                    .as_ref()
                    .and_then(|n| n.peer_failure_seen(i))
                    .is_some();
                if after_peer {
                    peer_caused.get_or_insert(failure);
                } else if summary.failure.is_none() {
                    summary.failure = Some(failure);
                }
            }
            if let Some(network) = &network {
                summary.ports = network.stats();
                summary.port_budget = Some(network.budget_stats());
            }
            let skipped = if status[i] == StageStatus::Failed {
                skip_dependents(&mut summary, &mut status, req, i)
            } else {
                Vec::new()
            };
            update_summary(&mut summary_file, &summary);
            for name in std::iter::once(&stages[i].name).chain(&skipped) {
                observer.stage_finished(summary.stage(name).expect("every stage has a record"));
            }
        }
    });

    if summary.failure.is_none() {
        summary.failure = peer_caused;
    }
    let after = tree_digest(&req.payload)?;
    if after != summary.payload.before && summary.failure.is_none() {
        summary.failure = Some(JobFailure {
            stage: None,
            reason: FailureReason::new(
                FailureKind::Host,
                "the payload changed while the job ran (not through Ward: stages see it read-only)",
            ),
        });
    }
    summary.payload.after = Some(after);
    summary.status = if summary.failure.is_some() {
        JobStatus::Failed
    } else {
        JobStatus::Succeeded
    };
    summary.duration_s = Some(started.elapsed().as_secs_f64());
    summary_file
        .finish(&summary)
        .map_err(io_error(&summary_path))?;
    Ok(summary)
}

/// Runs one stage on its own thread and sends its outcome (or, should the host itself panic,
/// a host failure) to the runner, so the runner never waits for a stage that cannot answer.
fn run_and_report(
    engine: &Engine,
    invocation: &StageInvocation<'_>,
    log: &StageLog,
    i: usize,
    tx: &mpsc::Sender<(usize, StageRunResult, u64)>,
) {
    tracing::info!("stage started");
    let mut reported = false;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_stage_then(engine, invocation, |result| {
            log.finish();
            match &result.result {
                Ok(()) => {
                    tracing::info!(seconds = result.run_time.as_secs_f64(), "stage succeeded")
                }
                Err(reason) => {
                    tracing::info!(kind = ?reason.kind, reason = %reason.message, "stage failed")
                }
            }
            reported = tx.send((i, result, log.dropped_bytes())).is_ok();
        });
        log.ensure_file();
    }));
    if outcome.is_err() && !reported {
        let reason = FailureReason::new(
            FailureKind::Host,
            "the host failed while running this stage (see the host's log)",
        );
        let _ = tx.send((i, StageRunResult::failed(reason), 0));
    }
}

/// Checks what a finished stage left in its results, before anything downstream reads them:
/// results over the quota (the stage has already failed with `disk-quota`, see
/// `stage_run`) are removed whole; otherwise links leading out are removed. Either fails it.
fn check_results(mounts: &[Mount], result: &StageRunResult) -> Option<FailureReason> {
    let over_quota = matches!(&result.result, Err(r) if r.kind == FailureKind::DiskQuota);
    let reason = if over_quota {
        remove_over_quota(mounts, result)
    } else {
        remove_escapes(mounts)?
    };
    let mut message = reason.message;
    if let Err(earlier) = &result.result {
        if earlier.kind != reason.kind {
            message.push_str(&format!(
                "; the stage itself ended with: {}",
                earlier.message
            ));
        }
    }
    Some(FailureReason::new(reason.kind, message))
}

/// The writable volumes of a stage: what it leaves behind.
fn outputs(mounts: &[Mount]) -> impl Iterator<Item = &Mount> {
    mounts.iter().filter(|m| !m.read_only)
}

/// Removes everything in the stage's outputs (however deep), so no later stage, export or
/// download sees results that were not accepted; says what could not be removed.
fn clear_outputs(mounts: &[Mount]) -> String {
    let mut failed = Vec::new();
    for m in outputs(mounts) {
        if let Err(e) = clear_dir(&m.host_path) {
            tracing::error!(dir = %m.host_path.display(), error = %e, "cannot remove a stage's results");
            failed.push(format!("{}: {e}", m.guest_path));
        }
    }
    if failed.is_empty() {
        "its results were removed".to_string()
    } else {
        format!(
            "its results could not all be removed ({})",
            failed.join(", ")
        )
    }
}

/// A stage that failed over its quota keeps none of its results.
fn remove_over_quota(mounts: &[Mount], result: &StageRunResult) -> FailureReason {
    let reason = result.result.clone().expect_err("the stage failed");
    FailureReason {
        message: format!("{}; {}", reason.message, clear_outputs(mounts)),
        ..reason
    }
}

/// Removes links leading out of a finished stage's outputs (resolved as the kernel would)
/// before anything downstream can read them; if there were any, returns the stage's
/// failure. Results that cannot be checked are not kept either.
fn remove_escapes(mounts: &[Mount]) -> Option<FailureReason> {
    let mut found = Vec::new();
    for m in outputs(mounts) {
        match remove_escaping_symlinks(&m.host_path) {
            Ok(links) => found.extend(links.into_iter().map(|(link, target)| {
                format!(
                    "{}/{} -> {}",
                    m.guest_path.trim_end_matches('/'),
                    abbreviate(&link),
                    abbreviate(&target)
                )
            })),
            Err(WalkError::TooDeep { path, limit }) => {
                let over = QuotaExceeded::TooDeep {
                    guest_path: m.guest_path.trim_end_matches('/').to_string(),
                    path,
                    limit,
                };
                return Some(FailureReason::new(
                    FailureKind::DiskQuota,
                    format!("{over}; {}", clear_outputs(mounts)),
                ));
            }
            Err(e) => {
                return Some(FailureReason::new(
                    FailureKind::Escape,
                    format!(
                        "its results at {} could not be checked for links leading out ({e}); {}",
                        m.guest_path,
                        clear_outputs(mounts)
                    ),
                ))
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    Some(FailureReason::new(
        FailureKind::Escape,
        format!(
            "left symbolic links leading out of its results (removed): {}",
            found.join(", ")
        ),
    ))
}

/// Every stage's mounts; each dataset must be a directory.
fn plan_job_mounts(req: &JobRequest, layout: &JobLayout) -> Result<Vec<Vec<Mount>>, JobError> {
    let mut all = Vec::with_capacity(req.pipeline.stages.len());
    for stage in &req.pipeline.stages {
        let mounts = plan_mounts(stage, layout, &req.payload, &req.datasets)?;
        if let Some(m) = mounts
            .iter()
            .find(|m| m.kind == VolumeKind::Dataset && !m.host_path.is_dir())
        {
            return Err(VolumeError::NotADirectory {
                path: m.host_path.clone(),
                what: format!("dataset '{}' of operator '{}'", m.name, stage.name),
            }
            .into());
        }
        all.push(mounts);
    }
    Ok(all)
}

/// Creates a stage's output directories and its log, or says why it cannot run.
fn prepare_stage(
    mounts: &[Mount],
    log_path: &std::path::Path,
) -> Result<Arc<StageLog>, FailureReason> {
    let host_error = |what: &std::path::Path, e: std::io::Error| {
        FailureReason::new(FailureKind::Host, format!("{}: {e}", what.display()))
    };
    for m in mounts.iter().filter(|m| !m.read_only) {
        std::fs::create_dir_all(&m.host_path).map_err(|e| host_error(&m.host_path, e))?;
    }
    let log = StageLog::create(log_path, LOG_BUDGET_BYTES).map_err(|e| host_error(log_path, e))?;
    Ok(Arc::new(log))
}

/// Rewrites the running summary; a failure to write it is logged, not fatal to the job
/// (the final summary is written, and its error returned, when the job ends).
fn update_summary(file: &mut SummaryFile, summary: &JobSummary) {
    if let Err(e) = file.update(summary) {
        tracing::error!(error = %e, "cannot update summary.json");
    }
}

fn load_components(
    engine: &Engine,
    pipeline: &Pipeline,
) -> Result<Vec<Arc<StageComponent>>, JobError> {
    pipeline
        .stages
        .iter()
        .map(|s| {
            engine
                .load_component(&s.component.path, s.component.digest.as_deref())
                .map_err(|source| JobError::Component {
                    location: s.component.location.clone(),
                    operator: s.name.clone(),
                    source,
                })
        })
        .collect()
}

fn prepare_job_dir(layout: &JobLayout) -> Result<(), JobError> {
    let root = &layout.root;
    if root.exists() {
        let mut entries = std::fs::read_dir(root).map_err(io_error(root))?;
        if entries.next().is_some() {
            return Err(JobError::JobDirNotEmpty { path: root.clone() });
        }
    }
    for dir in [root.join("results"), root.join("logs")] {
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    }
    Ok(())
}

fn invocation<'a>(
    req: &JobRequest,
    i: usize,
    component: &'a StageComponent,
    mounts: &'a [Mount],
    log: Arc<StageLog>,
    observer: &Arc<dyn JobObserver>,
) -> StageInvocation<'a> {
    let spec = &req.pipeline.stages[i];
    let mut parameters = spec.parameters.clone();
    parameters.extend(req.parameters.clone());
    let progress: ProgressFn = {
        let observer = observer.clone();
        let name = spec.name.clone();
        Arc::new(move |fraction, message| observer.stage_progress(&name, fraction, message))
    };
    let mut args = vec![spec.name.clone()];
    args.extend(spec.args.iter().cloned());
    StageInvocation {
        component,
        info: JobInfo {
            job_id: req.job_id.clone(),
            pipeline: req.pipeline.name.clone(),
            stage: spec.name.clone(),
            tenant: req.tenant.clone(),
            attempt: 1,
        },
        parameters: parameters.into_iter().collect(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        args,
        mounts,
        memory_cap: spec.requests.memory_bytes,
        timeout: spec.requests.timeout,
        disk_bytes: spec.requests.disk_bytes,
        files: spec.requests.files,
        log,
        progress,
        ports: None,
        cancel: req.cancel.clone(),
        preempted: req.preempted.clone(),
        gpu_memory: spec.requests.gpu_memory_bytes,
        inference: None,
    }
}

/// The refusal of a stage whose component imports `wasi:nn` without the stage declaring
/// `requests.inference` (also what `ward validate` says of it).
pub fn inference_refusal(spec: &StageSpec, component: &StageComponent) -> Option<JobError> {
    let import = component.world.inference_import()?;
    (!spec.requests.inference).then(|| JobError::InferenceNotDeclared {
        location: spec.location.clone(),
        operator: spec.name.clone(),
        import: import.to_string(),
    })
}

/// What each stage may do with `wasi:nn`: nothing unless it declares `requests.inference`
/// (a component that imports `wasi:nn` without it is refused here, before any stage runs),
/// and the pipeline's models resolved against the job's datasets.
fn inference_grants(
    engine: &Engine,
    req: &JobRequest,
    components: &[Arc<StageComponent>],
) -> Result<Vec<Option<Arc<InferenceGrant>>>, JobError> {
    let pipeline = &req.pipeline;
    for (spec, component) in pipeline.stages.iter().zip(components) {
        if let Some(refused) = inference_refusal(spec, component) {
            return Err(refused);
        }
    }
    if !pipeline.stages.iter().any(|s| s.requests.inference) {
        return Ok(vec![None; pipeline.stages.len()]);
    }
    let mut models = BTreeMap::new();
    for m in &pipeline.models {
        let dir = req
            .datasets
            .get(&m.dataset)
            .ok_or_else(|| JobError::ModelDataset {
                location: m.location.clone(),
                model: m.name.clone(),
                dataset: m.dataset.clone(),
            })?;
        models.insert(
            m.name.clone(),
            DeclaredModel {
                path: dir.join(&m.path),
                digest: m.digest.clone(),
                target: if m.target == "gpu" {
                    ward_nn::Target::Gpu
                } else {
                    ward_nn::Target::Cpu
                },
            },
        );
    }
    Ok(pipeline
        .stages
        .iter()
        .map(|s| {
            s.requests.inference.then(|| {
                Arc::new(InferenceGrant {
                    host: engine.inference().clone(),
                    models: models.clone(),
                    gpu_memory: s.requests.gpu_memory_bytes,
                    threads: s.requests.cpu.max(1) as usize,
                })
            })
        })
        .collect())
}

/// A job whose stages share ports may buffer up to its channel budget in this host's memory:
/// no more than the host allows.
fn check_ports_budget(engine: &Engine, pipeline: &Pipeline) -> Result<(), JobError> {
    let budget = &pipeline.ports_budget;
    let has_ports = pipeline.stages.iter().any(|s| !s.ports_out.is_empty());
    if has_ports && budget.bytes > engine.max_ports_budget() {
        return Err(JobError::PortsBudget {
            location: budget.location.clone().unwrap_or_else(|| Location {
                file: pipeline.file.clone(),
                line: 1,
                column: 1,
            }),
            budget: budget.bytes,
            limit: engine.max_ports_budget(),
        });
    }
    Ok(())
}

/// Marks every stage downstream of failed stage `failed` as skipped, with the reason, and
/// returns their names.
fn skip_dependents(
    summary: &mut JobSummary,
    status: &mut [StageStatus],
    req: &JobRequest,
    failed: usize,
) -> Vec<String> {
    let stages = &req.pipeline.stages;
    let mut skipped = Vec::new();
    // Repeated until nothing changes: a skipped stage skips its port peers (they cannot run
    // without it), which may come earlier in the order.
    loop {
        let before = skipped.len();
        for j in 0..stages.len() {
            let blocked_by = stages[j]
                .depends_on
                .iter()
                .chain(&stages[j].port_peers)
                .find(|&&d| d == failed || status[d] == StageStatus::Skipped);
            if status[j] == StageStatus::Pending {
                if let Some(&d) = blocked_by {
                    status[j] = StageStatus::Skipped;
                    if let Some(record) = summary.stage_mut(&stages[j].name) {
                        record.status = StageStatus::Skipped;
                        record.reason = Some(FailureReason::new(
                            FailureKind::UpstreamFailed,
                            if stages[j].port_peers.contains(&d) {
                                format!(
                                    "not run: stage '{}', joined to it by ports, did not run",
                                    stages[d].name
                                )
                            } else {
                                format!(
                                    "not run: upstream stage '{}' did not succeed",
                                    stages[d].name
                                )
                            },
                        ));
                    }
                    skipped.push(stages[j].name.clone());
                }
            }
        }
        if skipped.len() == before {
            return skipped;
        }
    }
}

/// Marks every stage not yet started as cancelled (or pre-empted).
fn cancel_pending(
    summary: &mut JobSummary,
    status: &mut [StageStatus],
    stages: &[StageSpec],
    preempted: bool,
) {
    let (kind, what) = match preempted {
        true => (
            FailureKind::Preempted,
            "pre-empted for a job of higher priority",
        ),
        false => (FailureKind::Cancelled, "cancelled"),
    };
    for (i, stage) in stages.iter().enumerate() {
        if status[i] == StageStatus::Pending {
            status[i] = StageStatus::Skipped;
            if let Some(record) = summary.stage_mut(&stage.name) {
                record.status = StageStatus::Skipped;
                record.reason = Some(FailureReason::new(
                    kind,
                    format!("not run: the job was {what}"),
                ));
            }
            if summary.failure.is_none() {
                summary.failure = Some(JobFailure {
                    stage: None,
                    reason: FailureReason::new(kind, format!("the job was {what}")),
                });
            }
        }
    }
}
