//! Retention: each tenant's finished jobs older than `retention.jobs` and its payloads older
//! than `retention.payloads` that no job names any more are removed, record and directory,
//! audited, and taken out of the tenant's stored bytes.
//!
//! The record goes first, in one statement that also checks the job is still ended (or the
//! payload still unused), so a job started again or a job created on the payload meanwhile
//! keeps what it needs; only then is the directory moved aside (one rename) and deleted.
//! A pending or running job's files are never touched.

use super::Service;
use std::sync::Arc;
use std::time::Duration;

/// Runs the reclaimer until the process ends: at least every minute, and every tenth of
/// the shortest retention configured.
pub fn run(service: Arc<Service>) {
    let shortest = service
        .config
        .tenants
        .iter()
        .flat_map(|t| [t.retention.jobs, t.retention.payloads])
        .flatten()
        .min();
    let Some(shortest) = shortest else {
        return; // nothing is ever reclaimed
    };
    let every = (shortest / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
    loop {
        reclaim(&service);
        std::thread::sleep(every);
    }
}

/// One pass over every tenant.
pub fn reclaim(service: &Service) {
    let now = super::db::now();
    for tenant in &service.config.tenants {
        if let Some(keep) = tenant.retention.jobs {
            let before = now - keep.as_secs_f64();
            match service.db.expired_jobs(&tenant.name, before) {
                Ok(jobs) => {
                    for (id, bytes) in jobs {
                        remove_job(service, &tenant.name, &id, bytes);
                    }
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant.name, error = %e, "retention cannot list jobs")
                }
            }
        }
        if let Some(keep) = tenant.retention.payloads {
            let before = now - keep.as_secs_f64();
            match service.db.expired_payloads(&tenant.name, before) {
                Ok(payloads) => {
                    for (id, bytes) in payloads {
                        remove_payload(service, &tenant.name, &id, bytes);
                    }
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant.name, error = %e, "retention cannot list payloads")
                }
            }
        }
    }
}

fn remove_job(service: &Service, tenant: &str, id: &str, bytes: u64) {
    match service.db.delete_ended_job(id) {
        Ok(true) => {}
        Ok(false) => return, // started again meanwhile
        Err(e) => {
            tracing::error!(job = %id, error = %e, "retention cannot remove the job's record");
            return;
        }
    }
    discard(service, &service.job_dir(id));
    service.storage.remove_stored(tenant, bytes);
    let detail =
        format!("retention: ended over the tenant's retention.jobs ago; {bytes} bytes freed");
    service.audit(tenant, "ward", "job.expired", id, &detail);
    tracing::info!(job = %id, tenant, bytes, "job removed by retention");
}

fn remove_payload(service: &Service, tenant: &str, id: &str, bytes: u64) {
    match service.db.delete_unused_payload(id) {
        Ok(true) => {}
        Ok(false) => return, // a job names it now
        Err(e) => {
            tracing::error!(payload = %id, error = %e, "retention cannot remove the payload's record");
            return;
        }
    }
    discard(service, &service.payload_dir(id));
    service.storage.remove_stored(tenant, bytes);
    let detail = format!("retention: created over the tenant's retention.payloads ago, used by no job; {bytes} bytes freed");
    service.audit(tenant, "ward", "payload.expired", id, &detail);
    tracing::info!(payload = %id, tenant, bytes, "payload removed by retention");
}

/// Moves `dir` out of the state tree in one rename, then deletes it: a reader sees the
/// whole directory or none of it.
fn discard(service: &Service, dir: &std::path::Path) {
    if !dir.exists() {
        return;
    }
    let trash = service.config.state.join("trash");
    let _ = std::fs::create_dir_all(&trash);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = trash.join(format!("{name}.{}", std::process::id()));
    let target = match std::fs::rename(dir, &aside) {
        Ok(()) => aside,
        Err(_) => dir.to_path_buf(),
    };
    if let Err(e) = std::fs::remove_dir_all(&target) {
        tracing::error!(dir = %target.display(), error = %e, "retention cannot delete a directory");
    }
}
