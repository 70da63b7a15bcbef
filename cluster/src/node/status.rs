//! The statuses a node writes: the claim (or re-claim) of a job, the end of a run, the
//! release at shutdown, each with the condition that says why.

use crate::executor::Outcome;
use crate::resources::{JobCondition, JobPhase, WardJob, WardJobStatus};

pub(crate) fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Sets a condition of a type, replacing the one of that type if there is one.
pub(crate) fn set_condition(status: &mut WardJobStatus, type_: &str, reason: &str, message: &str) {
    let condition = JobCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: now(),
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => status.conditions.push(condition),
    }
}

/// What a claim writes. A job held by a node that was lost is re-claimed the same way,
/// with a `NodeLost` condition naming that node; the payload is never written, and the new
/// attempt writes to a directory of its own.
pub(crate) fn claimed(job: &WardJob, node: &str, lost_node: Option<&str>) -> WardJobStatus {
    let mut status = job.status.clone().unwrap_or_default();
    let attempt = status.attempt + 1;
    if let Some(lost) = lost_node {
        set_condition(
            &mut status,
            "NodeLost",
            "LeaseExpired",
            &format!(
                "node {lost} stopped renewing its Lease during attempt {}",
                attempt - 1
            ),
        );
    }
    status.phase = JobPhase::Claimed;
    status.node = Some(node.to_string());
    status.attempt = attempt;
    status.claimed_at = Some(now());
    status.started_at = None;
    status.finished_at = None;
    status.stages = Vec::new();
    status.message = None;
    status.result = Some(format!(
        "{}/attempt-{attempt}",
        job.spec.results.trim_end_matches('/')
    ));
    set_condition(
        &mut status,
        "Claimed",
        "NodeClaimed",
        &format!("attempt {attempt} claimed by node {node}"),
    );
    status
}

/// What a re-claim writes when the lost node's attempt was the last one allowed.
pub(crate) fn exhausted_by_loss(job: &WardJob, lost_node: &str) -> WardJobStatus {
    let mut status = job.status.clone().unwrap_or_default();
    let message = format!(
        "node {lost_node} was lost during attempt {} of {}; no attempts remain",
        status.attempt, job.spec.max_attempts
    );
    set_condition(&mut status, "NodeLost", "LeaseExpired", &message);
    set_condition(&mut status, "Completed", "AttemptsExhausted", &message);
    status.phase = JobPhase::Failed;
    status.finished_at = Some(now());
    status.message = Some(message);
    status
}

/// Why a run was stopped, as the node decided it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Another node holds the job now (or a later attempt): write nothing more.
    Lost,
    /// The control plane set `spec.cancel`.
    Cancel,
    /// This node is shutting down and its grace period is ending.
    Release,
}

/// What the end of a run writes; `None` where nothing may be written (the job was lost).
///
/// A release at shutdown puts the job back to Pending and keeps its attempt number: the
/// next claim makes attempt N+1 (a fresh result directory), and a release never fails a
/// job, however many attempts it has had; attempts are checked against `maxAttempts` only
/// when an attempt fails for a reason worth retrying or its node is lost.
pub(crate) fn ended(
    current: &WardJob,
    outcome: &Outcome,
    stop: Option<StopReason>,
    node: &str,
) -> Option<WardJobStatus> {
    let mut status = current.status.clone().unwrap_or_default();
    let attempt = status.attempt;
    let finish = |status: &mut WardJobStatus, phase: JobPhase, reason: &str, message: String| {
        status.phase = phase;
        status.finished_at = Some(now());
        set_condition(status, "Completed", reason, &message);
        if phase != JobPhase::Succeeded {
            status.message = Some(message);
        }
    };
    match (outcome, stop) {
        (_, Some(StopReason::Lost)) => return None,
        (Outcome::Succeeded, _) => finish(
            &mut status,
            JobPhase::Succeeded,
            "Succeeded",
            format!("attempt {attempt} succeeded on node {node}"),
        ),
        (Outcome::Failed(why), _) => finish(&mut status, JobPhase::Failed, "Failed", why.clone()),
        (Outcome::Retry(why), _) if attempt < current.spec.max_attempts => {
            status.phase = JobPhase::Pending;
            status.message = Some(why.clone());
            set_condition(
                &mut status,
                "Retrying",
                "AttemptFailed",
                &format!("attempt {attempt} failed and may be retried: {why}"),
            );
        }
        (Outcome::Retry(why), _) => finish(
            &mut status,
            JobPhase::Failed,
            "AttemptsExhausted",
            format!(
                "attempt {attempt} of {} failed: {why}",
                current.spec.max_attempts
            ),
        ),
        (Outcome::Stopped, Some(StopReason::Release)) if !current.spec.cancel => {
            status.phase = JobPhase::Pending;
            status.message = Some(format!("released by node {node} as it shut down"));
            set_condition(
                &mut status,
                "Released",
                "NodeShutdown",
                &format!("attempt {attempt} stopped by node {node} as it shut down"),
            );
        }
        (Outcome::Stopped, Some(StopReason::Cancel)) | (Outcome::Stopped, _)
            if current.spec.cancel || stop == Some(StopReason::Cancel) =>
        {
            finish(
                &mut status,
                JobPhase::Cancelled,
                "Cancelled",
                format!("cancelled during attempt {attempt}"),
            )
        }
        (Outcome::Stopped, _) => finish(
            &mut status,
            JobPhase::Failed,
            "Stopped",
            format!("attempt {attempt} stopped without being asked to"),
        ),
    }
    Some(status)
}
