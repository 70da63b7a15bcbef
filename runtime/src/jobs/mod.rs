//! Jobs: one execution of a pipeline on a payload. The DAG runner, the per-stage sandbox
//! run, and the job record (results, logs, summary).

mod id;
mod outcome;
mod request;
mod runner;
pub mod stage_run;
mod summary;

pub use id::{new_job_id, rfc3339_utc};
pub use outcome::{FailureKind, FailureReason, StageStatus};
pub use runner::{
    inference_refusal, run_job, JobError, JobObserver, JobRequest, NoObserver, LOG_BUDGET_BYTES,
};
pub use summary::{JobFailure, JobStatus, JobSummary, PayloadRecord, StageRecord};
