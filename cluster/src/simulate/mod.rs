//! The scale simulation: N node runtimes (each a task with its own client, named after the
//! node) against one FAKE API server, M jobs from several tenants with varied priority and
//! size, run by an executor that only waits out each job's duration, optionally with k
//! nodes killed mid-run — all in paused (virtual) time on one thread, so an hour of cluster
//! time takes seconds. What it measures is the claim protocol and its API traffic. Each
//! node reaches the fake through [`latency::Delayed`]: requests take a round trip and
//! watch events arrive late, as on a real API server, which is what opens races between
//! nodes; the API server's own load (its answers slowing as requests grow) is not modelled.

pub mod latency;

use crate::api::{ClusterApi, Event};
use crate::executor::{Assignment, JobExecutor, Outcome, ProgressSender, StopReceiver};
use crate::fake::FakeApiServer;
use crate::lease::Capacity;
use crate::node::{NodeConfig, NodeRuntime, NodeStats};
use crate::resources::{
    JobRequests, PayloadRef, PipelineRef, StageState, WardJob, WardJobSpec, WardPipeline,
    WardPipelineSpec,
};
use futures_util::StreamExt;
use latency::{Delayed, Latency};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const NAMESPACE: &str = "ward";
/// When killed nodes die, in virtual time after the start.
const KILL_AT: Duration = Duration::from_secs(120);
/// Stages each simulated job reports progress for.
const STAGES: usize = 3;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimParams {
    pub nodes: usize,
    pub jobs: usize,
    pub tenants: usize,
    /// Nodes killed (their tasks aborted) mid-run.
    pub kill: usize,
    pub seed: u64,
    /// The way from each node to the API server.
    pub latency: Latency,
}

/// What a simulation measured.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub params: SimParams,
    /// Jobs whose stages ran once, twice or more, never — not counting the runs that a
    /// node's death cut short.
    pub ran_once: usize,
    pub ran_more_than_once: usize,
    pub never_ran: usize,
    /// Runs begun again because the node running them was killed.
    pub reruns_after_node_death: usize,
    pub jobs_succeeded: usize,
    /// Claims lost to another node (409), in all.
    pub claim_conflicts: u64,
    /// API requests per node per virtual second.
    pub requests_per_node_s: f64,
    /// Watch events delivered per node per virtual second.
    pub events_per_node_s: f64,
    /// Virtual seconds from the start until the last job ended.
    pub makespan_s: f64,
    /// Per tenant: its share of the jobs submitted, and of the jobs started in the first
    /// half of the makespan.
    pub tenant_submitted: Vec<f64>,
    pub tenant_started_first_half: Vec<f64>,
    /// Wall-clock seconds the simulation took.
    pub wall_s: f64,
}

/// A tiny deterministic generator (splitmix64): the simulation is the same for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One run the simulated executor began.
#[derive(Clone, Debug)]
struct SimRun {
    job: String,
    node: String,
    started: Instant,
    ended: bool,
}

/// The FAKE job runner of the simulation: waits out a job's duration in virtual time,
/// reporting its stages as it goes.
#[derive(Clone)]
struct SimExecutor {
    node: String,
    durations: Arc<HashMap<String, Duration>>,
    runs: Arc<Mutex<Vec<SimRun>>>,
}

impl JobExecutor for SimExecutor {
    async fn run(
        &self,
        assignment: Assignment,
        progress: ProgressSender,
        mut stop: StopReceiver,
    ) -> Outcome {
        let job = assignment.job.metadata.name.clone().unwrap_or_default();
        let index = {
            let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
            runs.push(SimRun {
                job: job.clone(),
                node: self.node.clone(),
                started: Instant::now(),
                ended: false,
            });
            runs.len() - 1
        };
        let duration = self.durations.get(&job).copied().unwrap_or_default();
        let mut stages: Vec<StageState> = (0..STAGES)
            .map(|i| StageState {
                name: format!("stage-{i}"),
                state: "pending".into(),
                ..StageState::default()
            })
            .collect();
        for i in 0..STAGES {
            stages[i].state = "running".into();
            let _ = progress.send(stages.clone());
            tokio::select! {
                () = tokio::time::sleep(duration / STAGES as u32) => {}
                _ = stop.wait_for(|s| *s) => return Outcome::Stopped,
            }
            stages[i].state = "succeeded".into();
            stages[i].wall_ms = Some((duration / STAGES as u32).as_millis() as u64);
        }
        let _ = progress.send(stages);
        self.runs.lock().unwrap_or_else(|e| e.into_inner())[index].ended = true;
        Outcome::Succeeded
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

/// Runs one simulation on a fresh single-threaded runtime in paused time.
pub fn run(params: &SimParams) -> SimReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime for the simulation");
    let wall = std::time::Instant::now();
    let mut report = runtime.block_on(simulate(params.clone()));
    report.wall_s = wall.elapsed().as_secs_f64();
    report
}

async fn simulate(params: SimParams) -> SimReport {
    let server = FakeApiServer::new();
    let control = server.client("control-plane");
    let mut rng = Rng(params.seed);
    control
        .create_pipeline(&WardPipeline::new(
            "sim-v1",
            WardPipelineSpec {
                tenant: "sim".into(),
                name: "sim".into(),
                version: 1,
                document: "name: sim\n".into(),
                components_dir: "/shared/components".into(),
                components: vec![],
            },
        ))
        .await
        .expect("the fake takes the pipeline");
    // Tenants submit unequal shares (halving from the first), so fairness shows.
    let tenants = params.tenants.max(1);
    let weights: Vec<u64> = (0..tenants)
        .map(|i| 1u64 << (tenants - 1 - i).min(20))
        .collect();
    let total_weight: u64 = weights.iter().sum();
    let mut durations = HashMap::new();
    let mut tenant_of = HashMap::new();
    let mut submitted = vec![0usize; tenants];
    for i in 0..params.jobs {
        let mut pick = rng.below(total_weight);
        let tenant = weights
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        submitted[tenant] += 1;
        let cpu = match rng.below(10) {
            0 => 4,
            1..=3 => 2,
            _ => 1,
        };
        let priority = if rng.below(10) == 0 { 10 } else { 0 };
        let name = format!("job-{i:05}");
        durations.insert(name.clone(), Duration::from_secs(20 + rng.below(161)));
        tenant_of.insert(name.clone(), tenant);
        let job = WardJob::new(
            &name,
            WardJobSpec {
                tenant: format!("tenant-{tenant}"),
                pipeline: PipelineRef {
                    name: "sim".into(),
                    object: "sim-v1".into(),
                    version: Some(1),
                },
                payload: PayloadRef {
                    id: name.clone(),
                    path: format!("/shared/payloads/{name}"),
                },
                priority,
                requests: JobRequests {
                    memory_bytes: u64::from(cpu) << 30,
                    cpu,
                    gpu_memory_bytes: 0,
                },
                max_attempts: 3,
                cancel: false,
                datasets: Default::default(),
                results: format!("/shared/results/{name}"),
            },
        );
        control
            .create_job(&job)
            .await
            .expect("the fake takes the job");
    }
    // The control plane's view: when each job reached a final phase.
    let mut watch = control.watch_jobs();
    let durations = Arc::new(durations);
    let runs: Arc<Mutex<Vec<SimRun>>> = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut stats: Vec<Arc<NodeStats>> = Vec::new();
    for i in 0..params.nodes {
        let name = node_name(i);
        // Two node sizes: every fourth node is twice as large.
        let slots = if i % 4 == 3 { 16 } else { 8 };
        let capacity = Capacity {
            memory_bytes: u64::from(slots) << 30,
            slots,
            gpu_memory_bytes: 0,
        };
        let node = NodeRuntime::new(
            Delayed::new(server.client(&name), params.latency),
            SimExecutor {
                node: name.clone(),
                durations: durations.clone(),
                runs: runs.clone(),
            },
            NodeConfig::new(&name, NAMESPACE, capacity),
        );
        stats.push(node.stats());
        tasks.push(tokio::spawn(node.run(std::future::pending())));
    }
    let kill_at = started + KILL_AT;
    let mut killed: Vec<String> = Vec::new();
    let mut finals: HashMap<String, (Instant, bool)> = HashMap::new();
    while finals.len() < params.jobs {
        let event = if killed.len() < params.kill.min(params.nodes) {
            tokio::select! {
                e = watch.next() => e,
                () = tokio::time::sleep_until(kill_at) => {
                    for i in 0..params.kill.min(params.nodes) {
                        // Spread the deaths over the node list.
                        let at = i * params.nodes / params.kill.max(1);
                        tasks[at].abort();
                        killed.push(node_name(at));
                    }
                    continue;
                }
            }
        } else {
            watch.next().await
        };
        let Some(Ok(Event::Apply(job) | Event::InitApply(job))) = event else {
            continue;
        };
        if job.phase().is_final() {
            let name = job.metadata.name.clone().unwrap_or_default();
            let ok = job.phase() == crate::resources::JobPhase::Succeeded;
            finals.entry(name).or_insert((Instant::now(), ok));
        }
    }
    let makespan = finals
        .values()
        .map(|(at, _)| *at - started)
        .max()
        .unwrap_or_default();
    for task in &tasks {
        task.abort();
    }
    let runs = runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report(
        params, &server, &stats, &runs, &killed, &finals, &tenant_of, &submitted, started, makespan,
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    params: SimParams,
    server: &FakeApiServer,
    stats: &[Arc<NodeStats>],
    runs: &[SimRun],
    killed: &[String],
    finals: &HashMap<String, (Instant, bool)>,
    tenant_of: &HashMap<String, usize>,
    submitted: &[usize],
    started: Instant,
    makespan: Duration,
) -> SimReport {
    let mut effective: HashMap<&str, usize> = HashMap::new();
    let mut reruns_after_node_death = 0;
    let tenants = submitted.len();
    let mut started_first_half = vec![0usize; tenants];
    let mut first_start: HashMap<&str, Instant> = HashMap::new();
    for run in runs {
        let cut_by_death = !run.ended && killed.contains(&run.node);
        if cut_by_death {
            reruns_after_node_death += 1;
        } else {
            *effective.entry(run.job.as_str()).or_default() += 1;
        }
        first_start
            .entry(run.job.as_str())
            .and_modify(|t| *t = (*t).min(run.started))
            .or_insert(run.started);
    }
    for (job, at) in &first_start {
        if *at - started <= makespan / 2 {
            started_first_half[tenant_of[*job]] += 1;
        }
    }
    let count = |pred: &dyn Fn(usize) -> bool| {
        tenant_of
            .keys()
            .filter(|j| pred(effective.get(j.as_str()).copied().unwrap_or(0)))
            .count()
    };
    let requests = server.requests();
    let node_total = |m: &std::collections::BTreeMap<String, u64>| -> u64 {
        m.iter()
            .filter(|(caller, _)| caller.starts_with("node-"))
            .map(|(_, n)| n)
            .sum()
    };
    let per_node_s =
        |total: u64| total as f64 / params.nodes.max(1) as f64 / makespan.as_secs_f64().max(1.0);
    let claim_conflicts: u64 = stats
        .iter()
        .map(|s| s.conflicts.load(Ordering::Relaxed))
        .sum();
    let share = |counts: &[usize]| -> Vec<f64> {
        let total: usize = counts.iter().sum();
        counts
            .iter()
            .map(|c| *c as f64 / total.max(1) as f64)
            .collect()
    };
    SimReport {
        ran_once: count(&|n| n == 1),
        ran_more_than_once: count(&|n| n > 1),
        never_ran: count(&|n| n == 0),
        reruns_after_node_death,
        jobs_succeeded: finals.values().filter(|(_, ok)| *ok).count(),
        claim_conflicts,
        requests_per_node_s: per_node_s(node_total(&requests.by_caller)),
        events_per_node_s: per_node_s(node_total(&requests.events_by_caller)),
        makespan_s: makespan.as_secs_f64(),
        tenant_submitted: share(submitted),
        tenant_started_first_half: share(&started_first_half),
        wall_s: 0.0,
        params,
    }
}

fn percentages(shares: &[f64]) -> String {
    shares
        .iter()
        .map(|s| format!("{:.0}", s * 100.0))
        .collect::<Vec<_>>()
        .join("/")
}

/// The reports as a Markdown table.
pub fn table(reports: &[SimReport]) -> String {
    let mut out = String::from(
        "| nodes | jobs | latency (round trip / watch) | killed | ran once | ran twice+ | never ran | re-runs after node death \
         | claim conflicts per job | requests per node per s | watch events per node per s \
         | makespan (virtual) | tenants: % submitted | % started in first half | wall time |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|\n",
    );
    for r in reports {
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} ms | {} | {} | {} | {} | {} | {:.3} | {:.2} | {:.1} | {:.0} s | {} | {} | {:.1} s |",
            r.params.nodes,
            r.params.jobs,
            r.params.latency.round_trip.as_millis(),
            r.params.latency.watch_delay.as_millis(),
            r.params.kill,
            r.ran_once,
            r.ran_more_than_once,
            r.never_ran,
            r.reruns_after_node_death,
            r.claim_conflicts as f64 / r.params.jobs.max(1) as f64,
            r.requests_per_node_s,
            r.events_per_node_s,
            r.makespan_s,
            percentages(&r.tenant_submitted),
            percentages(&r.tenant_started_first_half),
            r.wall_s,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_simulation_runs_every_job_exactly_once() {
        let r = run(&SimParams {
            nodes: 5,
            jobs: 300,
            tenants: 3,
            kill: 0,
            seed: 7,
            latency: Latency {
                round_trip: Duration::from_millis(20),
                watch_delay: Duration::from_millis(100),
            },
        });
        assert_eq!(r.ran_once, 300, "{r:?}");
        assert_eq!((r.ran_more_than_once, r.never_ran), (0, 0));
        assert_eq!(r.jobs_succeeded, 300);
        assert!(r.makespan_s > 20.0);
        assert!(table(&[r]).contains("| 5 | 300 | 20 / 100 ms | 0 | 300 | 0 | 0 |"));
    }

    #[test]
    fn killed_nodes_jobs_run_again_elsewhere() {
        let r = run(&SimParams {
            nodes: 6,
            jobs: 400,
            tenants: 2,
            kill: 2,
            seed: 3,
            latency: Latency::NONE,
        });
        assert!(r.reruns_after_node_death > 0, "{r:?}");
        assert_eq!(r.ran_once, 400, "{r:?}");
        assert_eq!(r.jobs_succeeded, 400);
    }
}
