//! Running one stage in its sandbox: a fresh store with its memory cap and deadline, its
//! volumes as preopens, its log; then `run`, and a precise account of how it ended.

use super::outcome::{FailureKind, FailureReason};
use crate::engine::{Engine, EpochTicker, StageComponent};
use crate::host::bindings::context::JobInfo;
use crate::host::bindings::types::StageError;
use crate::host::bindings::volumes::{Volume, VolumeKind as WitVolumeKind};
use crate::host::ports::{Deadlock, StagePorts};
use crate::host::stage_log::{truncate, MAX_MESSAGE_BYTES};
use crate::host::{build_wasi, wasi::Preopen, ProgressFn, StageLimiter, StageLog, StageState};
use crate::pipeline::quantity::format_bytes;
use crate::ports::PortNetwork;
use crate::volumes::{
    abbreviate, held_deleted_within, measure, Held, Mount, Usage, VolumeKind, WalkError,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};

/// Everything needed to run one stage once.
pub struct StageInvocation<'a> {
    pub component: &'a StageComponent,
    pub info: JobInfo,
    pub parameters: Vec<(String, String)>,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub mounts: &'a [Mount],
    pub memory_cap: u64,
    pub timeout: Duration,
    /// What the stage may leave in its results (`requests.disk`, `requests.files`).
    pub disk_bytes: u64,
    pub files: u64,
    pub log: Arc<StageLog>,
    pub progress: ProgressFn,
    /// The job's port channels and this stage's number in them, when it has ports.
    pub ports: Option<(Arc<PortNetwork>, usize)>,
    /// The job's cancellation flag.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Set with `cancel` when the job is pre-empted.
    pub preempted: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// GPU memory the stage may allocate (`requests.gpu-memory`).
    pub gpu_memory: u64,
    /// `wasi:nn` for a stage that declared `requests.inference`.
    pub inference: Option<Arc<crate::nn::InferenceGrant>>,
}

/// The job was cancelled while this stage ran.
#[derive(Debug, thiserror::Error)]
#[error("cancelled: the job was cancelled while the stage ran")]
pub struct Cancelled;

/// How old the listing of the host's open descriptors may be when a running stage's quota
/// is checked (a fresh one is made when it ends).
const HELD_LISTING_AGE: Duration = Duration::from_millis(250);

/// Epoch ticks between checks of a running stage's deadline and results quota.
const CHECK_TICKS: u64 = 50;

/// A stage's results quota, checked while it runs and when it ends: what its outputs hold
/// (walked relative to directory descriptors, so no depth of names hides anything), plus the
/// files it deleted there but still holds open.
pub struct Quota {
    /// Each output: its host directory and where the stage sees it.
    pub outputs: Vec<(PathBuf, String)>,
    pub bytes: u64,
    pub files: u64,
}

/// A stage's results went over its quota, or cannot be measured (which counts the same: a
/// stage must not be able to hide what it wrote).
#[derive(Debug, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("disk quota: the stage's results hold {} in {} entries{}, over its {} or {} entries (requests.disk, requests.files)", format_bytes(.usage.bytes + .held.bytes), .usage.entries + .held.files, held_note(.held), format_bytes(*.bytes), .files)]
    Over {
        usage: Usage,
        held: Held,
        bytes: u64,
        files: u64,
    },
    #[error("disk quota: the stage's results nest directories deeper than {limit} levels, the most the host measures (at {guest_path}/{})", abbreviate(.path))]
    TooDeep {
        guest_path: String,
        path: PathBuf,
        limit: usize,
    },
    #[error("disk quota: the stage's results at {guest_path} cannot be measured: {error}")]
    Unmeasurable { guest_path: String, error: String },
}

fn held_note(held: &Held) -> String {
    if held.files == 0 {
        return String::new();
    }
    format!(
        " (of which {} in {} files it deleted but still holds open)",
        format_bytes(held.bytes),
        held.files
    )
}

impl Quota {
    /// The quota of the stage with `mounts` (its writable ones are its outputs).
    pub fn for_mounts(mounts: &[Mount], bytes: u64, files: u64) -> Quota {
        Quota {
            outputs: mounts
                .iter()
                .filter(|m| !m.read_only)
                .map(|m| (m.host_path.clone(), m.guest_path.clone()))
                .collect(),
            bytes,
            files,
        }
    }

    /// Whether the results are over the quota now (files held open counted from a listing
    /// of the host's descriptors at most [`HELD_LISTING_AGE`] old, shared by the stages
    /// running at once).
    pub fn exceeded(&self) -> Option<QuotaExceeded> {
        self.exceeded_within(HELD_LISTING_AGE)
    }

    /// Like [`Quota::exceeded`], with a fresh listing of the files held open: the last word
    /// when a stage ends.
    pub fn exceeded_at_end(&self) -> Option<QuotaExceeded> {
        self.exceeded_within(std::time::Duration::ZERO)
    }

    fn exceeded_within(&self, max_age: Duration) -> Option<QuotaExceeded> {
        let mut usage = Usage::default();
        for (dir, guest_path) in &self.outputs {
            match measure(dir) {
                Ok(u) => {
                    usage.bytes += u.bytes;
                    usage.entries += u.entries;
                }
                Err(WalkError::TooDeep { path, limit }) => {
                    return Some(QuotaExceeded::TooDeep {
                        guest_path: guest_path.trim_end_matches('/').to_string(),
                        path,
                        limit,
                    })
                }
                Err(e) => {
                    return Some(QuotaExceeded::Unmeasurable {
                        guest_path: guest_path.clone(),
                        error: e.to_string(),
                    })
                }
            }
        }
        // The kernel names a deleted file by the path it had: the outputs' real paths.
        let real: Vec<PathBuf> = self
            .outputs
            .iter()
            .filter_map(|(dir, _)| dir.canonicalize().ok())
            .collect();
        let held = held_deleted_within(&real, max_age).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot list the host's open files: deleted files a stage holds open are not counted");
            Held::default()
        });
        let over = usage.bytes.saturating_add(held.bytes) > self.bytes
            || usage.entries.saturating_add(held.files) > self.files;
        over.then_some(QuotaExceeded::Over {
            usage,
            held,
            bytes: self.bytes,
            files: self.files,
        })
    }
}

/// What running a stage measured, whatever the outcome.
#[derive(Debug, Clone)]
pub struct StageRunResult {
    pub result: Result<(), FailureReason>,
    pub instantiate_time: Duration,
    pub run_time: Duration,
    pub memory_peak: u64,
}

impl StageRunResult {
    /// A stage that ended before it could run.
    pub fn failed(reason: FailureReason) -> StageRunResult {
        StageRunResult {
            result: Err(reason),
            instantiate_time: Duration::ZERO,
            run_time: Duration::ZERO,
            memory_peak: 0,
        }
    }
}

/// Builds the store a stage runs in: WASI with its preopens, its limits and deadline.
pub fn new_store(
    engine: &Engine,
    inv: &StageInvocation<'_>,
) -> wasmtime::Result<Store<StageState>> {
    let preopens: Vec<Preopen<'_>> = inv
        .mounts
        .iter()
        .map(|m| Preopen {
            host_path: &m.host_path,
            guest_path: &m.guest_path,
            read_only: m.read_only,
        })
        .collect();
    let wasi = build_wasi(&preopens, &inv.args, &inv.env, &inv.log)?;
    let state = StageState {
        wasi,
        table: bounded_table(),
        limiter: StageLimiter::new(inv.memory_cap),
        info: inv.info.clone(),
        parameters: inv.parameters.clone(),
        volumes: inv.mounts.iter().map(wit_volume).collect(),
        log: inv.log.clone(),
        progress: inv.progress.clone(),
        // A stage without GPU memory never touches the device (no stream, no context).
        gpu: if inv.gpu_memory > 0 {
            engine.gpu().session(inv.gpu_memory)
        } else {
            gpu_host::Gpu::none().session(0)
        },
        ports: match &inv.ports {
            Some((network, stage)) => StagePorts::of(network.clone(), *stage),
            None => StagePorts::none(),
        },
        nn: crate::nn::StageInference {
            grant: inv.inference.clone(),
        },
    };
    let mut store = Store::new(engine.wasmtime(), state);
    store
        .data_mut()
        .gpu
        .set_deadline(Instant::now() + inv.timeout);
    store.limiter(|s| &mut s.limiter);
    // Every CHECK_TICKS epochs (and at the deadline) the callback looks at the clock and at
    // what the stage has written: a stage past its deadline is interrupted, one over its
    // results quota is stopped before it fills the disk.
    let deadline = Instant::now() + inv.timeout;
    let quota = Quota::for_mounts(inv.mounts, inv.disk_bytes, inv.files);
    store.set_epoch_deadline(EpochTicker::ticks_for(inv.timeout).min(CHECK_TICKS));
    let cancel = inv.cancel.clone();
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        if now >= deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        if cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(wasmtime::Error::new(Cancelled));
        }
        if let Some(over) = quota.exceeded() {
            return Err(wasmtime::Error::new(over));
        }
        Ok(UpdateDeadline::Continue(
            EpochTicker::ticks_for(deadline - now).min(CHECK_TICKS),
        ))
    });
    Ok(store)
}

/// Runs the stage to its end and hands how it ended to `report`, before the sandbox is torn
/// down. Never panics on anything the guest does.
pub fn run_stage_then(
    engine: &Engine,
    inv: &StageInvocation<'_>,
    report: impl FnOnce(StageRunResult),
) {
    // Declared before the store, so it is given back after the store is dropped.
    let _slot = engine.stage_slot();
    let started = Instant::now();
    let mut store = match new_store(engine, inv) {
        Ok(s) => s,
        Err(e) => {
            return report(StageRunResult::failed(FailureReason::new(
                FailureKind::Host,
                format!("cannot prepare the sandbox: {e:#}"),
            )))
        }
    };
    // A runtime of the stage's own: WASI's blocking calls are futures on it, so the timeout
    // below also ends a stage that waits in one (the epoch deadline covers wasm code).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return report(StageRunResult::failed(FailureReason::new(
                FailureKind::Host,
                format!("cannot start the stage's runtime: {e}"),
            )))
        }
    };
    let mut instantiate_time = Duration::ZERO;
    let mut run_started = Instant::now();
    let stage_run = async {
        let instance = inv.component.pre.instantiate_async(&mut store).await;
        instantiate_time = started.elapsed();
        run_started = Instant::now();
        match instance {
            Ok(stage) => stage.call_run(&mut store).await.map_err(Ended::Trapped),
            Err(e) => Err(Ended::NotInstantiated(e)),
        }
    };
    // The timer must be created inside the runtime.
    let ran = runtime.block_on(async { tokio::time::timeout(inv.timeout, stage_run).await });
    let result = match ran {
        Err(_elapsed) => Err(FailureReason::new(
            FailureKind::Deadline,
            format!(
                "deadline: the stage ran past its timeout of {:.1?} (requests.timeout) while waiting in a host call",
                inv.timeout
            ),
        )),
        Ok(ended) => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(StageError::InvalidInput(m))) => Err(FailureReason::new(
                FailureKind::InvalidInput,
                format!("invalid input: {}", truncate(&m, MAX_MESSAGE_BYTES)),
            )),
            Ok(Err(StageError::Failed(m))) => Err(FailureReason::new(
                FailureKind::StageError,
                truncate(&m, MAX_MESSAGE_BYTES),
            )),
            Err(Ended::Trapped(e)) => explain_error(e, &store, inv),
            Err(Ended::NotInstantiated(e)) => Err(explain_instantiation_error(e, &store, inv)),
        },
    };
    // The quota once more, however the stage ended and while its store still holds what it
    // holds open: files it deleted but kept open vanish with the store, unseen by any later
    // check.
    let result = check_quota_at_end(
        result,
        &Quota::for_mounts(inv.mounts, inv.disk_bytes, inv.files),
    );
    // Peers learn how this stage ended before anything else happens: readers see the end of
    // its streams, or its failure.
    if let Some((network, stage)) = &inv.ports {
        network.finish(*stage, result.as_ref().err().map(|r| r.message.as_str()));
    }
    let outcome = StageRunResult {
        result,
        instantiate_time,
        run_time: run_started.elapsed(),
        memory_peak: store.data().limiter.memory_peak(),
    };
    // Tearing the store down (returning its memory to the pool) takes a while; the
    // outcome is reported first so dependent stages need not wait for it.
    report(outcome);
    drop(store);
    // A file operation the stage left in flight (it timed out) may still be running on the
    // runtime's blocking pool; it is not waited for.
    runtime.shutdown_timeout(Duration::from_millis(100));
}

/// A stage that ends over its quota fails with `disk-quota`, whatever else it ended with.
fn check_quota_at_end(
    result: Result<(), FailureReason>,
    quota: &Quota,
) -> Result<(), FailureReason> {
    if matches!(&result, Err(r) if r.kind == FailureKind::DiskQuota) {
        return result;
    }
    let Some(over) = quota.exceeded_at_end() else {
        return result;
    };
    let mut message = over.to_string();
    if let Err(earlier) = &result {
        message.push_str(&format!(
            "; the stage itself ended with: {}",
            earlier.message
        ));
    }
    Err(FailureReason::new(FailureKind::DiskQuota, message))
}

/// Runs the stage to its end and returns how it ended.
pub fn run_stage(engine: &Engine, inv: &StageInvocation<'_>) -> StageRunResult {
    let mut outcome = None;
    run_stage_then(engine, inv, |o| outcome = Some(o));
    outcome.expect("run_stage_then always reports")
}

/// Why a stage could not be instantiated: the pool being full is the host's doing; anything
/// else (a trap in its start code, exiting, a limit) is the component's.
fn explain_instantiation_error(
    e: wasmtime::Error,
    store: &Store<StageState>,
    inv: &StageInvocation<'_>,
) -> FailureReason {
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return FailureReason::new(
            FailureKind::Host,
            format!("no instance slot was free on this host: {e}"),
        );
    }
    match explain_error(e, store, inv) {
        Ok(()) => FailureReason::new(
            FailureKind::Load,
            "cannot instantiate: the component exited during instantiation, before `run`",
        ),
        Err(mut reason) if reason.kind == FailureKind::Trap => {
            reason.kind = FailureKind::Load;
            reason.message = format!("cannot instantiate: {}", reason.message);
            reason
        }
        Err(reason) => reason,
    }
}

/// How the instantiate-and-run future ended when it did not return normally.
enum Ended {
    NotInstantiated(wasmtime::Error),
    Trapped(wasmtime::Error),
}

/// Turns a wasmtime error into the reason a person needs: which limit, which trap, where.
fn explain_error(
    e: wasmtime::Error,
    store: &Store<StageState>,
    inv: &StageInvocation<'_>,
) -> Result<(), FailureReason> {
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return match exit.0 {
            0 => Ok(()),
            code => Err(FailureReason::new(
                FailureKind::Exit,
                format!(
                    "the stage exited with a failure status ({code}) instead of returning from run"
                ),
            )),
        };
    }
    let backtrace = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string());
    if e.downcast_ref::<Cancelled>().is_some() {
        let preempted = inv
            .preempted
            .as_ref()
            .is_some_and(|p| p.load(std::sync::atomic::Ordering::Relaxed));
        return Err(FailureReason {
            kind: match preempted {
                true => FailureKind::Preempted,
                false => FailureKind::Cancelled,
            },
            message: match preempted {
                true => "pre-empted: the job was ended for a job of higher priority".into(),
                false => Cancelled.to_string(),
            },
            backtrace,
        });
    }
    if let Some(Deadlock(why)) = e.downcast_ref::<Deadlock>() {
        return Err(FailureReason {
            kind: FailureKind::Deadlock,
            message: why.clone(),
            backtrace,
        });
    }
    if let Some(over) = e.downcast_ref::<QuotaExceeded>() {
        return Err(FailureReason {
            kind: FailureKind::DiskQuota,
            message: over.to_string(),
            backtrace,
        });
    }
    let limiter = &store.data().limiter;
    let (kind, message) = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => (
            FailureKind::Deadline,
            format!(
                "deadline: the stage ran past its timeout of {:.1?} (requests.timeout)",
                inv.timeout
            ),
        ),
        Some(wasmtime::Trap::StackOverflow) => (
            FailureKind::StackOverflow,
            "wasm stack overflow (unbounded recursion?)".to_string(),
        ),
        _ if limiter.memory_refused.is_some() => {
            let wanted = limiter.memory_refused.unwrap_or_default();
            (
                FailureKind::MemoryLimit,
                format!(
                    "memory limit: the stage asked for {} of linear memory in total, over its cap of {} (requests.memory)",
                    format_bytes(wanted),
                    format_bytes(limiter.memory_cap())
                ),
            )
        }
        Some(trap) => {
            let stderr = inv.log.stderr_tail();
            // Rust and C keep their stack in linear memory: overflowing it shows as an
            // out-of-bounds access, not as a wasm stack overflow.
            let hint = if *trap == wasmtime::Trap::MemoryOutOfBounds {
                " (if the stage recursed deeply, its stack in linear memory may have overflowed)"
            } else {
                ""
            };
            let message = if stderr.is_empty() {
                format!("trap: {trap}{hint}")
            } else {
                format!("trap: {trap}{hint}; the stage's last output on stderr:\n{stderr}")
            };
            (FailureKind::Trap, message)
        }
        // Not a trap: an error a host function raised because of what the stage did.
        None => match e.downcast_ref::<wasmtime::component::ResourceTableError>() {
            Some(wasmtime::component::ResourceTableError::Full) => (
                FailureKind::HandleLimit,
                format!("handle limit: the stage held more than {MAX_HANDLES} open files, directories or streams at once"),
            ),
            _ => (FailureKind::Trap, e.root_cause().to_string()),
        },
    };
    Err(FailureReason {
        kind,
        message,
        backtrace,
    })
}

/// Open files, directories and streams a stage may hold at once. Each open file is a host
/// file descriptor, so this bounds what one stage can take from the host's limit.
pub const MAX_HANDLES: usize = 4096;

fn bounded_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HANDLES);
    table
}

fn wit_volume(m: &Mount) -> Volume {
    Volume {
        name: m.name.clone(),
        kind: match m.kind {
            VolumeKind::Payload => WitVolumeKind::Payload,
            VolumeKind::Results => WitVolumeKind::Results,
            VolumeKind::InputFromStage => WitVolumeKind::InputFromStage,
            VolumeKind::Dataset => WitVolumeKind::Dataset,
        },
        source: m.source.clone(),
        path: m.guest_path.clone(),
        read_only: m.read_only,
    }
}
