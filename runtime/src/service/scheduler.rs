//! Which queued job runs next: the highest priority first (immediate drains first), within a
//! priority the tenant with the fewest running jobs (so one tenant cannot starve another),
//! then the oldest. A job runs only within its tenant's concurrent-jobs quota and the node's
//! job slots and memory; when the job at the head does not fit, nothing behind it jumps
//! ahead, so a big job waits for room instead of waiting forever. A job's memory is what it
//! may hold at once ([`job_memory`]), port channels included.
//!
//! Pre-emption: when the job at the head is of priority `capacity.preempt-from` (immediate,
//! or higher) or above and does not fit, the fewest running jobs of lower priority whose
//! release makes it fit are ended (lowest priority first, the largest first within one),
//! never one of equal or higher priority nor one whose pipeline says `preemptible: false`.
//! Their workers queue them again; the head starts once they have ended.

use super::config::ServeConfig;
use super::db::JobRow;
use super::{worker, Service};
use crate::pipeline::Pipeline;
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
        // `next` and `victims` look at the head of the queue alone, which is always one of
        // the heads of a tenant's jobs at one priority.
        let queued = service.db.queue_heads()?;
        let Some(job) = next(&service.config, &running, &queued) else {
            preempt_for_the_head(service, &running, &queued);
            return Ok(());
        };
        if service.transition_audited(
            &job.id,
            &["queued"],
            "running",
            &job.tenant,
            "ward",
            "job.running",
            "",
        )? {
            super::job_events::started(&job.id, &job.tenant, job.attempts + 1);
            worker::spawn(service.clone(), job);
        }
    }
}

/// Ends the running jobs that must make room for the head of the queue, when it may
/// pre-empt. Nothing is chosen while earlier victims are still ending.
fn preempt_for_the_head(service: &Arc<Service>, running: &[JobRow], queued: &[JobRow]) {
    let busy = !service
        .preempting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty();
    if busy {
        return;
    }
    let Some((head, victims)) = victims(&service.config, running, queued) else {
        return;
    };
    for victim in victims {
        if service.preempt_running(&victim.id) {
            let detail = format!(
                "ended for job {} (priority {}); queued again",
                head.id,
                head.priority.name()
            );
            tracing::info!(job = %victim.id, for_job = %head.id, "pre-empted");
            service.audit(&victim.tenant, "ward", "job.preempted", &victim.id, &detail);
        }
    }
}

/// The job at the head of the queue (in `next`'s order) and the running jobs to end so it
/// fits the node and its tenant's quota, when it may pre-empt and ending them is enough.
fn victims(
    config: &ServeConfig,
    running: &[JobRow],
    queued: &[JobRow],
) -> Option<(JobRow, Vec<JobRow>)> {
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for r in running {
        *per_tenant.entry(r.tenant.as_str()).or_default() += 1;
    }
    let held = |t: &str| per_tenant.get(t).copied().unwrap_or(0);
    let quota = |tenant: &str| {
        config
            .tenant(tenant)
            .map_or(0, |t| t.quotas.concurrent_jobs)
    };
    let mut order: Vec<&JobRow> = queued.iter().collect();
    order.sort_by_key(|j| (std::cmp::Reverse(j.priority), held(&j.tenant), j.seq));
    let head = (*order.first()?).clone();
    if head.priority < config.preempt_from || quota(&head.tenant) == 0 {
        return None;
    }
    let mut eligible: Vec<&JobRow> = running
        .iter()
        .filter(|r| r.preemptible && r.priority < head.priority)
        .collect();
    // The head's own tenant's jobs first when its quota is what holds it; then the lowest
    // priority, within one the largest (so the fewest end), then the newest.
    let over_quota = held(&head.tenant) >= quota(&head.tenant);
    eligible.sort_by_key(|r| {
        (
            !(over_quota && r.tenant == head.tenant),
            r.priority,
            std::cmp::Reverse(r.memory),
            std::cmp::Reverse(r.seq),
        )
    });
    let fits = |left: usize, memory: u64, own: usize| {
        left < config.capacity_jobs
            && own < quota(&head.tenant)
            && (left == 0 || memory + head.memory as u64 <= config.capacity_memory)
    };
    let mut left = running.len();
    let mut memory: u64 = running.iter().map(|r| r.memory as u64).sum();
    let mut own = held(&head.tenant);
    let mut chosen = Vec::new();
    for r in eligible {
        if fits(left, memory, own) {
            break;
        }
        left -= 1;
        memory -= r.memory as u64;
        if r.tenant == head.tenant {
            own -= 1;
        }
        chosen.push(r.clone());
    }
    (fits(left, memory, own) && !chosen.is_empty()).then_some((head, chosen))
}

/// The memory a job may hold at once: its largest stage, or all the stages joined by ports
/// (they run together) with the job's channel budget (their messages wait in host memory),
/// whichever is more. Jobs run one stage at a time otherwise.
pub fn job_memory(pipeline: &Pipeline) -> u64 {
    pipeline
        .stages
        .iter()
        .map(|s| {
            let joined = !s.ports_in.is_empty() || !s.ports_out.is_empty();
            s.requests.memory_bytes
                + s.port_peers
                    .iter()
                    .map(|&p| pipeline.stages[p].requests.memory_bytes)
                    .sum::<u64>()
                + if joined {
                    pipeline.ports_budget.bytes
                } else {
                    0
                }
        })
        .max()
        .unwrap_or(0)
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

/// Why queued job `id` has not started: its place in the queue (in the order `next` takes
/// jobs) and which limit holds it, as the UI tells it.
pub fn pending_reason(
    config: &ServeConfig,
    running: &[JobRow],
    queued: &[JobRow],
    id: &str,
) -> Option<String> {
    let mut per_tenant: HashMap<&str, usize> = HashMap::new();
    for r in running {
        *per_tenant.entry(r.tenant.as_str()).or_default() += 1;
    }
    let held = |t: &str| per_tenant.get(t).copied().unwrap_or(0);
    let mut order: Vec<&JobRow> = queued.iter().collect();
    order.sort_by_key(|j| (std::cmp::Reverse(j.priority), held(&j.tenant), j.seq));
    let place = order.iter().position(|j| j.id == id)?;
    let job = order[place];
    let quota = config
        .tenant(&job.tenant)
        .map_or(0, |t| t.quotas.concurrent_jobs);
    let memory_used: u64 = running.iter().map(|r| r.memory as u64).sum();
    let why = if held(&job.tenant) >= quota {
        format!(
            "tenant {}'s quota of {quota} concurrent jobs is in use",
            job.tenant
        )
    } else if running.len() >= config.capacity_jobs {
        format!(
            "all {} job slots of the node are in use",
            config.capacity_jobs
        )
    } else if !running.is_empty() && memory_used + job.memory as u64 > config.capacity_memory {
        format!(
            "it needs {} MiB of memory; running jobs hold {} MiB of the node's {} MiB",
            job.memory as u64 >> 20,
            memory_used >> 20,
            config.capacity_memory >> 20
        )
    } else if place > 0 {
        format!("{place} jobs come before it")
    } else {
        "it starts next".to_string()
    };
    Some(format!("#{} in the queue: {why}", place + 1))
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
            max_priority: Priority::Higher,
            trust: Default::default(),
            retention: Default::default(),
        };
        ServeConfig {
            listen: String::new(),
            state: Default::default(),
            components: Default::default(),
            capacity_memory: memory,
            capacity_jobs: jobs,
            preempt_from: Priority::Immediate,
            disk: Default::default(),
            max_upload: 0,
            max_stow_parts: 1,
            tls: None,
            dicom: None,
            http: crate::service::config::HttpLimits {
                header_timeout: std::time::Duration::from_secs(20),
                idle_timeout: std::time::Duration::from_secs(300),
                max_connections: 1024,
            },
            audit_key_file: None,
            metrics_tokens: Vec::new(),
            registry_config: None,
            component_store: Default::default(),
            tenants: vec![tenant("a"), tenant("b")],
            locations: Default::default(),
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
            preemptible: true,
            preemptions: 0,
        }
    }

    const N: Priority = Priority::Normal;

    fn parsed(yaml: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stage.wasm"), b"\0asm").unwrap();
        crate::pipeline::parse(&dir.path().join("pipeline.yaml"), yaml).unwrap()
    }

    const STREAMING: &str = "api-version: 0.1
name: t
ports-budget: 256Mi
operators:
  - name: w
    component: {path: stage.wasm}
    requests: {memory: 256Mi}
    ports: {out: [{name: out, capacity: 1024, max-message: 64Mi}]}
  - name: r
    component: {path: stage.wasm}
    requests: {memory: 128Mi}
    ports: {in: [{name: in, from: w, port: out}]}
  - name: after
    component: {path: stage.wasm}
    requests: {memory: 200Mi}
    input: [{from: r, path: /r}]
";

    #[test]
    fn port_joined_stages_count_with_the_jobs_channel_budget() {
        const MI: u64 = 1 << 20;
        let p = parsed(STREAMING);
        assert_eq!(
            job_memory(&p),
            (256 + 128 + 256) * MI,
            "w and r run together, and their channels may hold 256Mi more"
        );
        let alone = parsed(&STREAMING.replace("{memory: 200Mi}", "{memory: 1Gi}"));
        assert_eq!(
            job_memory(&alone),
            1024 * MI,
            "the largest stage alone is more"
        );
        let default = parsed(&STREAMING.replace("ports-budget: 256Mi\n", ""));
        assert_eq!(
            job_memory(&default),
            (256 + 128 + 64) * MI,
            "the 64Mi default"
        );

        // A node of 1Gi runs a 512Mi job beside it only without the budget.
        let c = config(4, 1024 * MI, 4);
        let running = [job(1, "a", N, 512 * MI)];
        let queued = [job(2, "b", N, job_memory(&p))];
        assert!(
            next(&c, &running, &queued).is_none(),
            "640Mi does not fit beside 512Mi in 1Gi"
        );
        let queued = [job(2, "b", N, job_memory(&default))];
        assert_eq!(next(&c, &running, &queued).unwrap().seq, 2, "448Mi does");
    }

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

    #[test]
    fn an_immediate_job_ends_the_fewest_lower_jobs_that_make_it_fit() {
        let c = config(3, 100, 4);
        let lower = Priority::Lower;
        let running = [
            job(1, "a", lower, 20),
            job(2, "a", lower, 50),
            job(3, "b", N, 20),
        ];
        let urgent = [job(4, "b", Priority::Immediate, 60)];
        let (head, ended) = victims(&c, &running, &urgent).unwrap();
        assert_eq!(head.seq, 4);
        let ids: Vec<i64> = ended.iter().map(|v| v.seq).collect();
        assert_eq!(
            ids,
            vec![2],
            "one lower job of 50 frees enough; the normal one stays"
        );

        // Needing 90: both lower jobs go before the normal one would.
        let big = [job(4, "b", Priority::Immediate, 90)];
        let (_, ended) = victims(&c, &running, &big).unwrap();
        let mut ids: Vec<i64> = ended.iter().map(|v| v.seq).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3]);

        // Never a job of equal or higher priority, never a non-preemptible one.
        let mut pinned = running.clone();
        pinned[1].preemptible = false;
        // Without the 50, the 20 alone is not enough and the normal job is not eligible.
        assert!(victims(&c, &pinned, &urgent).is_none());
        let peers = [job(5, "a", Priority::Immediate, 100)];
        assert!(
            victims(&c, &peers, &urgent).is_none(),
            "equal priority stays"
        );

        // A higher job pre-empts only when configured to; a job that fits pre-empts nothing.
        let higher = [job(4, "b", Priority::Higher, 60)];
        assert!(victims(&c, &running, &higher).is_none());
        let mut from_higher = config(3, 100, 4);
        from_higher.preempt_from = Priority::Higher;
        assert!(victims(&from_higher, &running, &higher).is_some());
        let small = [job(4, "b", Priority::Immediate, 5)];
        assert!(victims(&config(4, 100, 4), &running, &small).is_none());
    }

    #[test]
    fn a_full_node_frees_a_slot_for_an_immediate_job() {
        let c = config(1, 100, 4);
        let running = [job(1, "a", Priority::Lower, 1)];
        let urgent = [job(2, "b", Priority::Immediate, 1)];
        let (_, ended) = victims(&c, &running, &urgent).unwrap();
        assert_eq!(ended.len(), 1);
        let mut pinned = running.clone();
        pinned[0].preemptible = false;
        assert!(victims(&c, &pinned, &urgent).is_none(), "it waits instead");
    }

    #[test]
    fn a_tenant_at_its_quota_preempts_its_own_lower_job_first() {
        // Room on the node, but tenant a may run one job: its own lower job makes way.
        let c = config(4, 100, 1);
        let running = [
            job(1, "b", Priority::Lower, 1),
            job(2, "a", Priority::Lower, 1),
        ];
        let urgent = [job(3, "a", Priority::Immediate, 1)];
        let (_, ended) = victims(&c, &running, &urgent).unwrap();
        let ids: Vec<i64> = ended.iter().map(|v| v.seq).collect();
        assert_eq!(ids, vec![2], "b's job is not in a's way");
        // One slot, one tenant at its quota of one.
        let c = config(1, 4 << 30, 1);
        let running = [job(1, "a", Priority::Lower, 1 << 30)];
        let urgent = [job(2, "a", Priority::Immediate, 1 << 30)];
        assert_eq!(victims(&c, &running, &urgent).unwrap().1.len(), 1);
    }
}
