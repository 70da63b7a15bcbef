//! What a job is asked to do, who hears about it, and why it could not run at all.

use super::summary::StageRecord;
use crate::engine::ComponentError;
use crate::pipeline::{Location, Pipeline};
use crate::volumes::VolumeError;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct JobRequest {
    pub pipeline: Pipeline,
    pub payload: PathBuf,
    /// Created by the runner; must not exist or be empty.
    pub job_dir: PathBuf,
    pub job_id: String,
    pub tenant: String,
    /// Job-level parameters, overriding the pipeline's and operators'.
    pub parameters: BTreeMap<String, String>,
    pub datasets: BTreeMap<String, PathBuf>,
    /// CPU slots stages may use at once (`requests.cpu` each).
    pub cpu_slots: u32,
    /// Set to cancel the job: no further stage starts, running ones are stopped.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Set (before `cancel`) when the job is ended for a job of higher priority: its stages
    /// end with kind `preempted` instead of `cancelled`.
    pub preempted: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Hears about a job as it runs (progress bars, logs). Every method has a default.
pub trait JobObserver: Send + Sync {
    /// Every component is compiled (or loaded from the cache) and linked; stages start next.
    fn components_ready(&self) {}
    fn stage_started(&self, _stage: &str) {}
    fn stage_progress(&self, _stage: &str, _fraction: f32, _message: &str) {}
    fn stage_finished(&self, _record: &StageRecord) {}
}

pub struct NoObserver;
impl JobObserver for NoObserver {}

/// Why a job could not be run at all (its stages' failures are in the summary instead).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{}: the payload is not a directory", path.display())]
    PayloadMissing { path: PathBuf },
    #[error("{}: the job directory already exists and is not empty", path.display())]
    JobDirNotEmpty { path: PathBuf },
    #[error("{location}: operator '{operator}': {source}")]
    Component {
        location: Location,
        operator: String,
        source: ComponentError,
    },
    #[error("{location}: operator '{operator}': requests {gpus} GPU(s), but this host provides none (the gpu interface answers no-device); set requests.gpu: 0 and use the stage's CPU path")]
    NoGpu {
        location: Location,
        operator: String,
        gpus: u32,
    },
    #[error("{location}: operator '{operator}': the component imports {import}, but the stage does not declare requests.inference: true; declare it to grant wasi:nn, or use a component without it")]
    InferenceNotDeclared {
        location: Location,
        operator: String,
        import: String,
    },
    #[error("{location}: model '{model}': dataset '{dataset}' is not given to this job (ward run --dataset {dataset}=DIR, or the tenant's datasets)")]
    ModelDataset {
        location: Location,
        model: String,
        dataset: String,
    },
    #[error("{location}: ports-budget {budget} bytes is over this host's limit of {limit} bytes for a job's port channels (ward run --max-ports-budget); lower ports-budget")]
    PortsBudget {
        location: Location,
        budget: u64,
        limit: u64,
    },
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(super) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> JobError {
    let path = path.into();
    move |source| JobError::Io { path, source }
}
