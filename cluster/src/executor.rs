//! What runs a claimed job: the node runtime hands each job it wins to a [`JobExecutor`] —
//! in `ward node` the same job runner as `ward run` and `ward serve`, in the simulation a
//! timer — and reports what it hears back through the job's status.

use crate::resources::{StageState, WardJob, WardPipeline};
use std::future::Future;

/// A job a node won, with what it needs to run it.
#[derive(Clone, Debug)]
pub struct Assignment {
    /// The job as the node claimed it (its status names this node and this attempt).
    pub job: WardJob,
    /// The pipeline object it names.
    pub pipeline: WardPipeline,
    /// The attempt this run is (1 for the first).
    pub attempt: u32,
    /// Where this attempt writes its results on shared storage
    /// (`<spec.results>/attempt-<attempt>`): a fresh directory, so a re-claimed job never
    /// writes where the attempt before it did.
    pub result_dir: String,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The job failed and trying again would fail again (bad input, a stage's own error
    /// after its last attempt).
    Failed(String),
    /// It failed in a way another attempt may not (a registry that could not be reached):
    /// put back to pending while attempts remain.
    Retry(String),
    /// It was stopped because the node was told to (cancel, job lost, shutdown).
    Stopped,
}

/// Stage states as the run goes; the node patches them into the status, rate-limited.
pub type ProgressSender = tokio::sync::watch::Sender<Vec<StageState>>;
/// Turns true when the run must stop (the job was cancelled or re-claimed by another node,
/// or the node is shutting down and its grace period is ending).
pub type StopReceiver = tokio::sync::watch::Receiver<bool>;

/// Runs jobs for a node runtime.
pub trait JobExecutor: Send + Sync + 'static {
    fn run(
        &self,
        assignment: Assignment,
        progress: ProgressSender,
        stop: StopReceiver,
    ) -> impl Future<Output = Outcome> + Send;
}
