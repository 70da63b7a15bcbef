//! A job's life as info log events on the service's log: queued (and why), started (which
//! attempt), finished (its outcome and how long the attempt ran). The audit trail records
//! the same transitions for the tenant; these are for whoever watches the node.

use std::time::Instant;

/// The job entered the queue: `why` is who or what put it there.
pub fn queued(job: &str, tenant: &str, why: &str) {
    tracing::info!(job, tenant, by = why, "job queued");
}

/// An attempt of the job began running.
pub fn started(job: &str, tenant: &str, attempt: i64) {
    tracing::info!(job, tenant, attempt, "job started");
}

/// An attempt of the job ended: `outcome` is `succeeded`, `failed`, `cancelled` or
/// `retrying` (failed, with attempts left); `reason` says why it did not succeed.
pub fn finished(
    job: &str,
    tenant: &str,
    attempt: i64,
    began: Instant,
    outcome: &str,
    reason: Option<&str>,
) {
    let duration_s = (began.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    match reason {
        Some(reason) => {
            tracing::info!(
                job,
                tenant,
                attempt,
                outcome,
                duration_s,
                reason,
                "job finished"
            )
        }
        None => tracing::info!(job, tenant, attempt, outcome, duration_s, "job finished"),
    }
}
