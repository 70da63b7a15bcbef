//! The node runtime (`ward node`, one per Kubernetes node): it watches WardJobs and node
//! Leases, claims the jobs it should run under the API server's optimistic concurrency,
//! runs them through a [`JobExecutor`], reports through their status, renews its own Lease,
//! and re-claims the jobs of nodes whose Lease ran out.
//!
//! Claim order is priority (higher first), then tenant fairness (the tenant holding fewest
//! jobs cluster-wide first), then age. So that many nodes do not all race for the same
//! first job, each node takes the first few claimable jobs that fit it — a window as wide
//! as 2n - 1 for the n nodes whose Leases say they have room — and tries them in the
//! order of a hash of (node, job, attempt): rendezvous hashing. Nodes looking at the same
//! window mostly choose different jobs; one that loses a claim (409 Conflict) reads the
//! change from its watch and chooses again.

mod cache;
mod job_run;
mod leases;
mod renew;
mod status;
#[cfg(test)]
mod tests;

use crate::api::{ApiError, ClusterApi, Event};
use crate::executor::JobExecutor;
use crate::lease::Capacity;
use crate::resources::{JobRequests, WardJob};
use cache::{Claimability, JobCache};
use futures_util::{FutureExt, StreamExt};
use job_run::{RunContext, SharedStop};
use leases::LeaseTracker;
use status::StopReason;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// The widest window of candidate jobs a node hashes over.
const MAX_WINDOW: usize = 1024;

/// What a node runtime is and holds.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's name (its Lease is `ward-node-<name>`).
    pub name: String,
    /// The namespace of Ward's resources.
    pub namespace: String,
    /// What it can hold at once.
    pub capacity: Capacity,
    /// How long its Lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often it renews the Lease.
    pub renew_every: Duration,
    /// The least time between two progress patches of one job.
    pub status_every: Duration,
    /// How long running jobs may go on after shutdown is asked for.
    pub grace: Duration,
}

impl NodeConfig {
    /// A node with Kubernetes' usual lease timings (15 s, renewed every 5 s), progress at
    /// most every 2 s, and 30 s of shutdown grace (the default pod termination grace).
    pub fn new(name: &str, namespace: &str, capacity: Capacity) -> Self {
        NodeConfig {
            name: name.to_string(),
            namespace: namespace.to_string(),
            capacity,
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            status_every: Duration::from_secs(2),
            grace: Duration::from_secs(30),
        }
    }
}

/// Counters a node keeps, readable while it runs.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Claims won (re-claims of a lost node's jobs included).
    pub claims: AtomicU64,
    /// Claims lost to another writer (409 Conflict).
    pub conflicts: AtomicU64,
    /// Re-claims of jobs whose node was lost.
    pub reclaims: AtomicU64,
    /// Runs stopped because another node took the job.
    pub lost_runs: AtomicU64,
    /// Whether the node holds its Lease and claims jobs (what its readiness reports).
    pub ready: AtomicBool,
    /// Jobs running on this node now.
    pub running: AtomicU64,
}

/// A node runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node}: cannot take its Lease: {source}")]
    Lease {
        node: String,
        #[source]
        source: ApiError,
    },
}

/// The node runtime.
pub struct NodeRuntime<A: ClusterApi, E: JobExecutor> {
    api: A,
    executor: Arc<E>,
    config: NodeConfig,
    stats: Arc<NodeStats>,
}

/// A run this node has under way.
struct RunHandle {
    attempt: u32,
    requests: JobRequests,
    stop_tx: watch::Sender<bool>,
    stop: SharedStop,
}

/// What decides claimability beyond the job itself.
struct Rules<'a> {
    own: &'a str,
    leases: &'a LeaseTracker,
    /// Attempts this process claimed, by job: a job shown with an earlier attempt is a
    /// stale view, and a job held by this node under an attempt not claimed here was held
    /// by an earlier run of this node.
    claimed_here: &'a HashMap<String, u32>,
}

impl Claimability for Rules<'_> {
    fn is_claimable(&self, job: &WardJob) -> bool {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let ours = self.claimed_here.get(name).copied();
        if ours.is_some_and(|a| job.attempt() < a) {
            return false;
        }
        if job.phase().is_final() {
            return false;
        }
        match job.holder() {
            None => cache::is_pending(job) && !job.spec.cancel,
            Some(node) if node == self.own => ours != Some(job.attempt()),
            Some(node) => self.leases.is_expired(node),
        }
    }
}

fn stop_reason_of(run: &RunHandle) -> Option<StopReason> {
    job_run::stop_reason(&run.stop)
}

/// A 64-bit mix of (node, job, attempt): each node's own order over the same window.
fn rendezvous(node: &str, job: &str, attempt: u32) -> u64 {
    // FNV-1a over the bytes, then a splitmix64 finish so close names spread apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node
        .bytes()
        .chain([0u8])
        .chain(job.bytes())
        .chain(attempt.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl<A: ClusterApi, E: JobExecutor> NodeRuntime<A, E> {
    pub fn new(api: A, executor: E, config: NodeConfig) -> Self {
        NodeRuntime {
            api,
            executor: Arc::new(executor),
            config,
            stats: Arc::default(),
        }
    }

    /// The node's counters (shared: they go on counting while it runs).
    pub fn stats(&self) -> Arc<NodeStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes and the running jobs have finished or been released.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        let span = tracing::info_span!("node", node = %self.config.name);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        let config = self.config.clone();
        let version = renew::write_lease(&self.api, &config, config.capacity, None)
            .await
            .map_err(|source| NodeError::Lease {
                node: config.name.clone(),
                source,
            })?;
        let (free_tx, free_rx) = watch::channel(config.capacity);
        let mut background = JoinSet::new();
        background.spawn(
            renew::renew_forever(self.api.clone(), config.clone(), free_rx, version)
                .instrument(tracing::Span::current()),
        );
        let mut node = Node {
            api: self.api.clone(),
            executor: self.executor.clone(),
            config: config.clone(),
            stats: self.stats.clone(),
            cache: JobCache::default(),
            leases: LeaseTracker::new(&config.name, config.lease_duration),
            claimed_here: HashMap::new(),
            runs: HashMap::new(),
            tasks: JoinSet::new(),
            task_jobs: HashMap::new(),
            free_tx,
            dirty: true,
            jobs_listed: false,
            job_list: None,
        };
        self.stats.ready.store(true, Ordering::Relaxed);
        node.main_loop(shutdown).await;
        self.stats.ready.store(false, Ordering::Relaxed);
        tracing::info!("node stopped; no longer renewing its Lease");
        background.abort_all();
        Ok(())
    }
}

/// The running node's state, owned by its main loop.
struct Node<A: ClusterApi, E: JobExecutor> {
    api: A,
    executor: Arc<E>,
    config: NodeConfig,
    stats: Arc<NodeStats>,
    cache: JobCache,
    leases: LeaseTracker,
    claimed_here: HashMap<String, u32>,
    runs: HashMap<String, RunHandle>,
    /// The runs' tasks: dropped with the node, so a node that is killed takes its runs with
    /// it.
    tasks: JoinSet<String>,
    /// The job each run task is for, so a task that panicked still frees its capacity.
    task_jobs: HashMap<tokio::task::Id, String>,
    free_tx: watch::Sender<Capacity>,
    /// Whether something changed that may make a claim possible.
    dirty: bool,
    jobs_listed: bool,
    /// A re-list of jobs being collected.
    job_list: Option<Vec<WardJob>>,
}

impl<A: ClusterApi, E: JobExecutor> Node<A, E> {
    async fn main_loop(&mut self, shutdown: impl Future<Output = ()>) {
        let mut jobs = self.api.watch_jobs();
        let mut lease_watch = self.api.watch_leases();
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        let mut release_at: Option<Instant> = None;
        loop {
            // Take in everything already delivered before deciding anything.
            loop {
                let mut any = false;
                while let Some(item) = jobs.next().now_or_never() {
                    any = true;
                    match item {
                        Some(event) => self.on_job_event(event),
                        None => jobs = self.api.watch_jobs(),
                    }
                }
                while let Some(item) = lease_watch.next().now_or_never() {
                    any = true;
                    match item {
                        Some(event) => self.on_lease_event(event),
                        None => lease_watch = self.api.watch_leases(),
                    }
                }
                while let Some(Some(done)) = self.tasks.join_next_with_id().now_or_never() {
                    any = true;
                    self.on_run_ended(done);
                }
                if !any {
                    break;
                }
            }
            self.expire_leases();
            if shutting_down && self.runs.is_empty() {
                return;
            }
            if !shutting_down && self.dirty && self.jobs_listed {
                self.claim_one().await;
                continue;
            }
            let next_expiry = self.leases.next_deadline();
            tokio::select! {
                () = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    // Not ready from here: the probes see the node stopping.
                    self.stats.ready.store(false, Ordering::Relaxed);
                    let margin = (self.config.grace / 4).min(Duration::from_secs(3));
                    release_at = Some(Instant::now() + self.config.grace.saturating_sub(margin));
                    tracing::info!(running = self.runs.len(), "shutting down: no more claims");
                }
                () = async { tokio::time::sleep_until(release_at.unwrap_or_else(Instant::now)).await },
                    if release_at.is_some() =>
                {
                    release_at = None;
                    for (name, run) in &self.runs {
                        tracing::info!(job = %name, "grace ending: releasing the job");
                        self.stop_run(run, StopReason::Release);
                    }
                }
                item = jobs.next() => match item {
                    Some(event) => self.on_job_event(event),
                    None => jobs = self.api.watch_jobs(),
                },
                item = lease_watch.next() => match item {
                    Some(event) => self.on_lease_event(event),
                    None => lease_watch = self.api.watch_leases(),
                },
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => self.on_run_ended(done),
                () = async { tokio::time::sleep_until(next_expiry.unwrap_or_else(Instant::now)).await },
                    if next_expiry.is_some() => {}
            }
        }
    }

    fn free(&self) -> Capacity {
        self.runs
            .values()
            .fold(self.config.capacity, |free, run| free.minus(&run.requests))
    }

    fn stop_run(&self, run: &RunHandle, reason: StopReason) {
        let mut stop = run.stop.lock().unwrap_or_else(|e| e.into_inner());
        // Lost wins over anything: once another node holds the job nothing is written.
        if *stop != Some(StopReason::Lost) {
            *stop = Some(reason);
        }
        drop(stop);
        let _ = run.stop_tx.send(true);
    }

    fn on_job_event(&mut self, event: Result<Event<WardJob>, ApiError>) {
        match event {
            Ok(Event::Init) => self.job_list = Some(Vec::new()),
            Ok(Event::InitApply(job)) => match &mut self.job_list {
                Some(list) => list.push(job),
                None => self.on_job(job),
            },
            Ok(Event::InitDone) => {
                let list = self.job_list.take().unwrap_or_default();
                for job in &list {
                    self.check_run(job);
                }
                let rules = Rules {
                    own: &self.config.name,
                    leases: &self.leases,
                    claimed_here: &self.claimed_here,
                };
                self.cache.replace_all(list, &rules);
                for holder in self.cache.holders() {
                    self.leases.note_holder(&holder);
                }
                self.jobs_listed = true;
                self.dirty = true;
            }
            Ok(Event::Apply(job)) => self.on_job(job),
            Ok(Event::Delete(job)) => {
                let name = job.metadata.name.clone().unwrap_or_default();
                if let Some(run) = self.runs.get(&name) {
                    self.stop_run(run, StopReason::Lost);
                }
                self.cache.remove(&name);
            }
            Err(e) => tracing::warn!(error = %e, "the job watch failed; it restarts"),
        }
    }

    fn on_job(&mut self, job: WardJob) {
        self.check_run(&job);
        if let Some(holder) = job.holder() {
            self.leases.note_holder(holder);
        }
        let rules = Rules {
            own: &self.config.name,
            leases: &self.leases,
            claimed_here: &self.claimed_here,
        };
        if rules.is_claimable(&job) {
            self.dirty = true;
        }
        self.cache.upsert(job, &rules);
    }

    /// Stops a run of ours when the job shows it cancelled, or held by someone else now.
    fn check_run(&self, job: &WardJob) {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        let Some(run) = self.runs.get(name) else {
            return;
        };
        let taken = job.attempt() > run.attempt
            || (job.attempt() == run.attempt
                && job.phase().is_held()
                && job.holder() != Some(self.config.name.as_str()));
        // The run's own status writer may have seen the loss first (a 409 and a fresh read)
        // and marked it lost, but it cannot stop the run: until the stop is signalled as
        // lost, it is signalled here (once).
        let stopped_as_lost =
            *run.stop_tx.borrow() && stop_reason_of(run) == Some(StopReason::Lost);
        if taken && !stopped_as_lost {
            tracing::warn!(job = %name, attempt = run.attempt, holder = ?job.holder(),
                "job was re-claimed by another node; stopping this run");
            self.stats.lost_runs.fetch_add(1, Ordering::Relaxed);
            self.stop_run(run, StopReason::Lost);
        } else if job.spec.cancel && !taken {
            tracing::info!(job = %name, "job cancelled; stopping it");
            self.stop_run(run, StopReason::Cancel);
        }
    }

    fn on_lease_event(
        &mut self,
        event: Result<Event<k8s_openapi::api::coordination::v1::Lease>, ApiError>,
    ) {
        match event {
            Ok(Event::Init) => {}
            Ok(Event::InitDone) => {
                self.leases.listed();
                for holder in self.cache.holders() {
                    self.leases.note_holder(&holder);
                }
            }
            Ok(Event::InitApply(lease)) | Ok(Event::Apply(lease)) => {
                if let Some(back) = self.leases.observe(&lease) {
                    tracing::info!(node = %back, "node renewed its Lease again");
                    self.refile_held_by(&back);
                }
            }
            Ok(Event::Delete(_)) => {}
            Err(e) => tracing::warn!(error = %e, "the Lease watch failed; it restarts"),
        }
    }

    fn refile_held_by(&mut self, node: &str) {
        let rules = Rules {
            own: &self.config.name,
            leases: &self.leases,
            claimed_here: &self.claimed_here,
        };
        for name in self.cache.held_by(node) {
            self.cache.refile(&name, &rules);
        }
    }

    fn expire_leases(&mut self) {
        for gone in self.leases.expire_due() {
            let held = self.cache.held_by(&gone);
            tracing::warn!(node = %gone, jobs = held.len(), "node's Lease expired");
            if !held.is_empty() {
                self.refile_held_by(&gone);
                self.dirty = true;
            }
        }
    }

    fn on_run_ended(&mut self, done: Result<(tokio::task::Id, String), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(name) = self.task_jobs.remove(&id) else {
            return;
        };
        if let Err(e) = done {
            // The job keeps the status last written; its capacity is free again.
            tracing::error!(job = %name, error = %e, "the run's task ended abnormally");
        }
        self.runs.remove(&name);
        self.stats
            .running
            .store(self.runs.len() as u64, Ordering::Relaxed);
        let _ = self.free_tx.send(self.free());
        self.dirty = true;
    }

    /// Tries one claim: picks among the first fitting jobs by rendezvous hash.
    async fn claim_one(&mut self) {
        let free = self.free();
        // One node alone takes jobs strictly in order; n nodes spread over 2n - 1.
        let window = (2 * self.leases.nodes_with_free().max(1) - 1).min(MAX_WINDOW);
        let skip: HashSet<String> = self.runs.keys().cloned().collect();
        let own = self.config.name.clone();
        let choice = self
            .cache
            .candidates(free, window, &skip)
            .into_iter()
            .max_by_key(|job| {
                rendezvous(
                    &own,
                    job.metadata.name.as_deref().unwrap_or_default(),
                    job.attempt(),
                )
            })
            .cloned();
        let Some(job) = choice else {
            self.dirty = false;
            return;
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let lost_node = job.holder().map(str::to_string);
        let span = tracing::info_span!("job", job = %name, attempt = job.attempt() + 1);
        let exhausted = lost_node.is_some() && job.attempt() >= job.spec.max_attempts;
        let status = match &lost_node {
            Some(lost) if exhausted => status::exhausted_by_loss(&job, lost),
            lost => status::claimed(&job, &own, lost.as_deref()),
        };
        let mut claim = job.clone();
        claim.status = Some(status);
        let answer = self
            .api
            .replace_job_status(&claim)
            .instrument(span.clone())
            .await;
        match answer {
            Ok(won) if exhausted => {
                span.in_scope(|| {
                    tracing::warn!("job failed: its node was lost on its last attempt")
                });
                self.on_job(won);
            }
            Ok(won) => {
                self.stats.claims.fetch_add(1, Ordering::Relaxed);
                if lost_node.is_some() {
                    self.stats.reclaims.fetch_add(1, Ordering::Relaxed);
                }
                span.in_scope(|| tracing::info!(lost = ?lost_node, "claimed"));
                self.start_run(won, span);
            }
            Err(ApiError::Conflict(_)) => {
                // Another node won; the watch brings its claim, then we choose again.
                self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                span.in_scope(|| tracing::debug!("claim lost to another node"));
                tokio::task::yield_now().await;
            }
            Err(ApiError::NotFound(_)) => self.cache.remove(&name),
            Err(e) => {
                span.in_scope(|| tracing::warn!(error = %e, "claim failed"));
                self.dirty = false;
            }
        }
    }

    fn start_run(&mut self, job: WardJob, span: tracing::Span) {
        let name = job.metadata.name.clone().unwrap_or_default();
        let attempt = job.attempt();
        self.claimed_here.insert(name.clone(), attempt);
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop: SharedStop = Arc::new(Mutex::new(None));
        self.runs.insert(
            name.clone(),
            RunHandle {
                attempt,
                requests: job.spec.requests,
                stop_tx,
                stop: stop.clone(),
            },
        );
        let _ = self.free_tx.send(self.free());
        let cx = RunContext {
            api: self.api.clone(),
            executor: self.executor.clone(),
            node: self.config.name.clone(),
            job: job.clone(),
            status_every: self.config.status_every,
            stop,
            stop_rx,
        };
        let task_name = name.clone();
        let task = self.tasks.spawn(
            async move {
                job_run::run_job(cx).await;
                task_name
            }
            .instrument(span),
        );
        self.task_jobs.insert(task.id(), name);
        self.stats
            .running
            .store(self.runs.len() as u64, Ordering::Relaxed);
        self.on_job(job);
    }
}
