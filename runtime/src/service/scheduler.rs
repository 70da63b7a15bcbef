//! Which queued job runs next: the highest priority first (immediate drains first), within a
//! priority the tenant with the fewest running jobs (so one tenant cannot starve another),
//! then the oldest. A job runs only within its tenant's concurrent-jobs quota and the node's
//! job slots and memory; when the job at the head does not fit, nothing behind it jumps
//! ahead, so a big job waits for room instead of waiting forever.

use super::config::ServeConfig;
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
        let Some(job) = next(&service.config, &running, &queued) else {
            return Ok(());
        };
        if service.db.transition(&job.id, &["queued"], "running")? {
            service.audit(&job.tenant, "ward", "job.running", &job.id, "");
            worker::spawn(service.clone(), job);
        }
    }
}

/// The job to start now, if any.
fn next(config: &ServeConfig, running: &[JobRow], queued: &[JobRow]) -> Option<JobRow> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::config::{Quotas, Tenant};
    use crate::service::db::Priority;

    fn config(jobs: usize, memory: u64, quota: usize) -> ServeConfig {
        let tenant = |name: &str| Tenant {
            name: name.into(),
            tokens: Vec::new(),
            quotas: Quotas {
                concurrent_jobs: quota,
                memory: u64::MAX,
                storage: u64::MAX,
                gpu_memory: 0,
            },
            stow_pipelines: Vec::new(),
            stow_priority: Priority::Normal,
        };
        ServeConfig {
            listen: String::new(),
            state: Default::default(),
            components: Default::default(),
            capacity_memory: memory,
            capacity_jobs: jobs,
            max_upload: 0,
            max_stow_parts: 1,
            tls: None,
            dicom: None,
            tenants: vec![tenant("a"), tenant("b")],
        }
    }

    fn job(seq: i64, tenant: &str, priority: Priority, memory: u64) -> JobRow {
        JobRow {
            seq,
            id: format!("{tenant}{seq}"),
            tenant: tenant.into(),
            pipeline_id: 1,
            payload_id: "p".into(),
            priority,
            state: "queued".into(),
            attempts: 0,
            max_attempts: 1,
            memory: memory as i64,
            created: 0.0,
            started: None,
            finished: None,
            failure: None,
        }
    }

    const N: Priority = Priority::Normal;

    #[test]
    fn higher_priority_first_then_the_oldest() {
        let c = config(4, 100, 4);
        let queued = [
            job(1, "a", N, 1),
            job(2, "a", Priority::Immediate, 1),
            job(3, "a", Priority::Higher, 1),
        ];
        assert_eq!(next(&c, &[], &queued).unwrap().seq, 2);
        let queued = [job(5, "a", N, 1), job(4, "a", N, 1)];
        assert_eq!(next(&c, &[], &queued).unwrap().seq, 4);
    }

    #[test]
    fn the_tenant_with_fewer_running_jobs_goes_first() {
        let c = config(4, 100, 4);
        let running = [job(1, "a", N, 1)];
        let queued = [job(2, "a", N, 1), job(3, "b", N, 1)];
        assert_eq!(
            next(&c, &running, &queued).unwrap().tenant,
            "b",
            "b has none running"
        );
    }

    #[test]
    fn a_tenant_at_its_quota_waits_and_others_go_on() {
        let c = config(4, 100, 1);
        let running = [job(1, "a", N, 1)];
        let queued = [job(2, "a", Priority::Immediate, 1), job(3, "b", N, 1)];
        assert_eq!(next(&c, &running, &queued).unwrap().tenant, "b");
        assert!(next(&c, &running, &queued[..1]).is_none());
    }

    #[test]
    fn a_job_that_does_not_fit_waits_and_nothing_jumps_ahead() {
        let c = config(4, 100, 4);
        let running = [job(1, "a", N, 60)];
        let queued = [job(2, "b", N, 60), job(3, "b", N, 10)];
        assert!(
            next(&c, &running, &queued).is_none(),
            "the head waits for memory"
        );
        assert_eq!(next(&c, &[], &queued).unwrap().seq, 2, "alone it runs");
        let full = [
            job(1, "a", N, 1),
            job(2, "a", N, 1),
            job(3, "b", N, 1),
            job(4, "b", N, 1),
        ];
        assert!(next(&c, &full, &queued).is_none(), "no job slot left");
    }
}
