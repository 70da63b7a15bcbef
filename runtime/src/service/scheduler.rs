//! Which queued job runs next: the highest priority first (immediate drains first), within a
//! priority the tenant with the fewest running jobs (so one tenant cannot starve another),
//! then the oldest. A job runs only within its tenant's concurrent-jobs quota and the node's
//! job slots and memory; when the job at the head does not fit, nothing behind it jumps
//! ahead, so a big job waits for room instead of waiting forever.

use super::db::JobRow;
use super::{worker, Service};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub fn run(service: Arc<Service>) {
    loop {
        {
            let (flag, cv) = &service.wake;
            let mut woken = flag.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = cv
                    .wait_timeout(woken, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
        if let Err(e) = start_what_fits(&service) {
            tracing::error!(error = %e, "the scheduler cannot read the queue");
        }
    }
}

fn start_what_fits(service: &Arc<Service>) -> Result<(), super::db::DbError> {
    loop {
        let running = service.db.running()?;
        let queued = service.db.queued()?;
        let Some(job) = next(service, &running, &queued) else {
            return Ok(());
        };
        if service.db.transition(&job.id, &["queued"], "running")? {
            service.audit(&job.tenant, "ward", "job.running", &job.id, "");
            worker::spawn(service.clone(), job);
        }
    }
}

/// The job to start now, if any.
fn next(service: &Service, running: &[JobRow], queued: &[JobRow]) -> Option<JobRow> {
    let config = &service.config;
    if running.len() >= config.capacity_jobs {
        return None;
    }
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for r in running {
        *per_tenant.entry(r.tenant.as_str()).or_default() += 1;
    }
    let memory_used: u64 = running.iter().map(|r| r.memory as u64).sum();
    let quota = |tenant: &str| {
        config
            .tenant(tenant)
            .map_or(0, |t| t.quotas.concurrent_jobs)
    };
    let mut candidates: Vec<&JobRow> = queued
        .iter()
        .filter(|j| per_tenant.get(j.tenant.as_str()).copied().unwrap_or(0) < quota(&j.tenant))
        .collect();
    candidates.sort_by_key(|j| {
        (
            std::cmp::Reverse(j.priority),
            per_tenant.get(j.tenant.as_str()).copied().unwrap_or(0),
            j.seq,
        )
    });
    let head = candidates.first()?;
    let fits = running.is_empty() || memory_used + head.memory as u64 <= config.capacity_memory;
    fits.then(|| (*head).clone())
}
