//! A WardJob's status, read back into its job's row: the control plane watches every WardJob
//! (a full list first, so a restarted control plane catches up on what ended while it was
//! down) and moves each row as the embedded worker would, with the same audit records and
//! job events. Every move is a guarded transition, so an event seen twice changes nothing
//! twice (and a succeeded job is exported once).

use super::cluster_dispatch::Link;
use super::db::JobRow;
use super::Service;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use ward_cluster::{ClusterApi, Event, JobPhase, WardJob, WardJobStatus};

/// Follows the WardJobs until the process ends, starting the watch over after an error.
pub async fn follow<A: ClusterApi>(
    service: Arc<Service>,
    api: A,
    link: Arc<Link>,
    retry: Duration,
) {
    loop {
        let mut events = api.watch_jobs();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(job)) | Ok(Event::InitApply(job)) => {
                    link.answered::<()>(&Ok(()));
                    reconcile(&service, &api, &link, &job).await;
                }
                Ok(_) => {}
                Err(e) => {
                    link.answered::<()>(&Err(e));
                    break;
                }
            }
        }
        tracing::warn!("the WardJob watch ended; starting it again");
        tokio::time::sleep(retry).await;
    }
}

/// Brings job `job`'s row to what its status says.
async fn reconcile<A: ClusterApi>(service: &Service, api: &A, link: &Link, job: &WardJob) {
    let Some(id) = job.metadata.name.as_deref() else {
        return;
    };
    let Ok(Some(row)) = service.db.job(&job.spec.tenant, id) else {
        // Not one of this control plane's jobs.
        return;
    };
    let status = job.status.clone().unwrap_or_default();
    match status.phase {
        JobPhase::Pending if job.spec.cancel => mark_cancelled(api, link, job).await,
        JobPhase::Pending => {
            // A node that held it was lost: it waits for another node.
            if row.state == "running" && transition(service, &row, "queued") {
                let why = status.message.as_deref().unwrap_or("its node was lost");
                service.audit(&row.tenant, "ward", "job.requeued", &row.id, why);
                super::job_events::queued(&row.id, &row.tenant, "node lost");
            }
        }
        JobPhase::Claimed | JobPhase::Running => {
            if row.state == "queued" && transition(service, &row, "running") {
                let node = status.node.as_deref().unwrap_or("");
                service.audit(&row.tenant, "ward", "job.running", &row.id, node);
                super::job_events::started(&row.id, &row.tenant, i64::from(status.attempt));
            }
            set_attempts(service, &row, &status);
        }
        JobPhase::Succeeded => {
            set_attempts(service, &row, &status);
            if transition(service, &row, "succeeded") {
                service.audit(&row.tenant, "ward", "job.succeeded", &row.id, "");
                finished(&row, &status, "succeeded", None);
                let attempt = service.attempt_dir(&row.id, i64::from(status.attempt));
                count_storage(service, &row, &attempt);
                super::dicom::export_results(service, &row.id, &attempt);
            }
        }
        JobPhase::Failed | JobPhase::Cancelled => {
            let outcome = if status.phase == JobPhase::Failed {
                "failed"
            } else {
                "cancelled"
            };
            set_attempts(service, &row, &status);
            let why = status
                .message
                .clone()
                .unwrap_or_else(|| outcome.to_string());
            if matches!(row.state.as_str(), "queued" | "running") {
                let _ = service.db.set_failure(&row.id, &why);
            }
            if transition(service, &row, outcome) {
                let detail = if outcome == "failed" {
                    why.as_str()
                } else {
                    ""
                };
                service.audit(
                    &row.tenant,
                    "ward",
                    &format!("job.{outcome}"),
                    &row.id,
                    detail,
                );
                finished(&row, &status, outcome, Some(&why));
                if status.attempt > 0 {
                    let attempt = service.attempt_dir(&row.id, i64::from(status.attempt));
                    count_storage(service, &row, &attempt);
                }
            }
        }
    }
}

/// Moves the row from queued or running to `to`; true when it moved.
fn transition(service: &Service, row: &JobRow, to: &str) -> bool {
    match service.db.transition(&row.id, &["queued", "running"], to) {
        Ok(moved) => moved,
        Err(e) => {
            tracing::error!(job = %row.id, error = %e, "cannot record the job's state");
            false
        }
    }
}

/// The node counts the attempts (a node lost mid-run counts one); the row follows it.
fn set_attempts(service: &Service, row: &JobRow, status: &WardJobStatus) {
    if status.attempt == 0 {
        return;
    }
    if let Err(e) = service.db.set_attempts(&row.id, i64::from(status.attempt)) {
        tracing::error!(job = %row.id, error = %e, "cannot record the job's attempts");
    }
}

/// What the attempt left (logs, results) counts in the tenant's storage from now on.
fn count_storage(service: &Service, row: &JobRow, attempt: &std::path::Path) {
    let left = crate::volumes::usage(&[attempt]).bytes;
    if let Err(e) = service.db.add_job_storage(&row.id, left) {
        tracing::error!(job = %row.id, error = %e, "cannot record the attempt's storage");
    }
    service.storage.add_stored(&row.tenant, left);
}

fn finished(row: &JobRow, status: &WardJobStatus, outcome: &str, reason: Option<&str>) {
    // The attempt's length as the row knows it: from when it was first seen running.
    let ran = row
        .started
        .map(|s| Duration::from_secs_f64((super::db::now() - s).max(0.0)))
        .unwrap_or_default();
    let began = std::time::Instant::now()
        .checked_sub(ran)
        .unwrap_or_else(std::time::Instant::now);
    super::job_events::finished(
        &row.id,
        &row.tenant,
        i64::from(status.attempt),
        began,
        outcome,
        reason,
    );
}

/// A WardJob cancelled before any node claimed it: no node will, so the control plane ends
/// it. A node claiming it at the same moment makes this write conflict; that node then sees
/// the cancel and ends the job itself.
async fn mark_cancelled<A: ClusterApi>(api: &A, link: &Link, job: &WardJob) {
    let mut ended = job.clone();
    let status = ended.status.get_or_insert_with(Default::default);
    status.phase = JobPhase::Cancelled;
    status.finished_at = Some(crate::jobs::rfc3339_utc(std::time::SystemTime::now()));
    status.message = Some("cancelled before a node claimed it".into());
    let answer = api.replace_job_status(&ended).await;
    link.answered(&answer);
    match answer {
        Ok(_)
        | Err(ward_cluster::ApiError::Conflict(_))
        | Err(ward_cluster::ApiError::NotFound(_)) => {}
        Err(e) => {
            tracing::warn!(job = ?job.metadata.name, error = %e, "cannot end the cancelled WardJob")
        }
    }
}
