//! The node runtime against the FAKE API server, in virtual time.

use super::*;
use crate::executor::{Assignment, Outcome, ProgressSender, StopReceiver};
use crate::fake::{FakeApiServer, FakeClient};
use crate::resources::{
    JobPhase, PayloadRef, PipelineRef, StageState, WardJobSpec, WardJobStatus, WardPipeline,
    WardPipelineSpec,
};
use futures_util::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;

/// What a test executor saw.
#[derive(Clone, Debug, PartialEq)]
struct RunLog {
    node: String,
    job: String,
    attempt: u32,
    result_dir: String,
    started: Instant,
    ended: Option<(Instant, Outcome)>,
}

/// Runs each job for the time its name asks for (`...-<seconds>s`, default 10 s), or until
/// stopped; records every run.
#[derive(Clone)]
struct TimedExecutor {
    node: String,
    log: Arc<Mutex<Vec<RunLog>>>,
}

fn seconds_in(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|s| s.strip_suffix('s'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

impl JobExecutor for TimedExecutor {
    async fn run(
        &self,
        assignment: Assignment,
        progress: ProgressSender,
        mut stop: StopReceiver,
    ) -> Outcome {
        let job = assignment.job.metadata.name.clone().unwrap_or_default();
        let index = {
            let mut log = self.log.lock().unwrap();
            log.push(RunLog {
                node: self.node.clone(),
                job: job.clone(),
                attempt: assignment.attempt,
                result_dir: assignment.result_dir.clone(),
                started: Instant::now(),
                ended: None,
            });
            log.len() - 1
        };
        let _ = progress.send(vec![StageState {
            name: "stage".into(),
            state: "running".into(),
            ..StageState::default()
        }]);
        let outcome = tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(seconds_in(&job))) => Outcome::Succeeded,
            _ = stop.wait_for(|s| *s) => Outcome::Stopped,
        };
        self.log.lock().unwrap()[index].ended = Some((Instant::now(), outcome.clone()));
        outcome
    }
}

const NS: &str = "ward";

fn slots(n: u32) -> Capacity {
    Capacity {
        memory_bytes: 1 << 40,
        slots: n,
        gpu_memory_bytes: 0,
    }
}

fn job(name: &str, tenant: &str, priority: i32, cpu: u32) -> WardJob {
    WardJob::new(
        name,
        WardJobSpec {
            tenant: tenant.into(),
            pipeline: PipelineRef {
                name: "p".into(),
                object: "p-v1".into(),
                version: Some(1),
            },
            payload: PayloadRef {
                id: format!("payload-{name}"),
                path: format!("/shared/payloads/{name}"),
            },
            priority,
            requests: JobRequests {
                memory_bytes: 1 << 20,
                cpu,
                gpu_memory_bytes: 0,
            },
            max_attempts: 3,
            cancel: false,
            datasets: Default::default(),
            results: format!("/shared/results/{name}"),
        },
    )
}

struct World {
    server: FakeApiServer,
    control: FakeClient,
    log: Arc<Mutex<Vec<RunLog>>>,
}

impl World {
    async fn new() -> World {
        let server = FakeApiServer::new();
        let control = server.client("control-plane");
        control
            .create_pipeline(&WardPipeline::new(
                "p-v1",
                WardPipelineSpec {
                    tenant: "t".into(),
                    name: "p".into(),
                    version: 1,
                    document: "name: p\n".into(),
                    components_dir: "/shared/components".into(),
                    components: vec![],
                },
            ))
            .await
            .unwrap();
        World {
            server,
            control,
            log: Arc::default(),
        }
    }

    async fn submit(&self, job: WardJob) {
        self.control.create_job(&job).await.unwrap();
    }

    fn node_with<A: ClusterApi>(
        &self,
        api: A,
        config: NodeConfig,
    ) -> NodeRuntime<A, TimedExecutor> {
        let executor = TimedExecutor {
            node: config.name.clone(),
            log: self.log.clone(),
        };
        NodeRuntime::new(api, executor, config)
    }

    /// Starts a node until `stop` turns true; returns its task and counters.
    fn start(
        &self,
        name: &str,
        capacity: Capacity,
    ) -> (
        tokio::task::JoinHandle<Result<(), NodeError>>,
        Arc<NodeStats>,
        watch::Sender<bool>,
    ) {
        let node = self.node_with(
            self.server.client(name),
            NodeConfig::new(name, NS, capacity),
        );
        let stats = node.stats();
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(node.run(async move {
            // A dropped sender is no request to shut down.
            if rx.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
        (task, stats, tx)
    }

    fn job(&self, name: &str) -> WardJob {
        self.server
            .jobs()
            .into_iter()
            .find(|j| j.metadata.name.as_deref() == Some(name))
            .unwrap()
    }

    fn runs_of(&self, name: &str) -> Vec<RunLog> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.job == name)
            .cloned()
            .collect()
    }

    /// Waits (in virtual time, up to a virtual hour) until `ok` holds of the jobs.
    async fn until(&self, what: &str, ok: impl Fn(&[WardJob]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !ok(&self.server.jobs()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}",
                self.server
                    .jobs()
                    .iter()
                    .map(|j| j.status.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn until_phase(&self, name: &str, phase: JobPhase) {
        self.until(&format!("{name} to be {phase:?}"), |jobs| {
            jobs.iter()
                .any(|j| j.metadata.name.as_deref() == Some(name) && j.phase() == phase)
        })
        .await;
    }
}

fn all_final(jobs: &[WardJob]) -> bool {
    jobs.iter().all(|j| j.phase().is_final())
}

#[tokio::test(start_paused = true)]
async fn three_nodes_racing_run_each_job_exactly_once() {
    let w = World::new().await;
    for i in 0..60 {
        w.submit(job(
            &format!("job-{i:02}-{}s", 5 + i % 7),
            &format!("t{}", i % 3),
            0,
            1,
        ))
        .await;
    }
    let nodes: Vec<_> = (0..3)
        .map(|i| w.start(&format!("n{i}"), slots(4)))
        .collect();
    w.until("every job to end", all_final).await;
    for j in w.server.jobs() {
        let name = j.metadata.name.clone().unwrap();
        assert_eq!(j.phase(), JobPhase::Succeeded, "{name}");
        assert_eq!(j.attempt(), 1, "{name}");
        assert_eq!(w.runs_of(&name).len(), 1, "{name} ran other than once");
    }
    let claims: u64 = nodes
        .iter()
        .map(|n| n.1.claims.load(Ordering::Relaxed))
        .sum();
    let conflicts: u64 = nodes
        .iter()
        .map(|n| n.1.conflicts.load(Ordering::Relaxed))
        .sum();
    assert_eq!(claims, 60);
    // Every node took part.
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            n.1.claims.load(Ordering::Relaxed) > 0,
            "n{i} claimed nothing"
        );
    }
    eprintln!("3 nodes, 60 jobs: {conflicts} claim conflicts");
}

#[tokio::test(start_paused = true)]
async fn claims_by_priority_then_tenant_fairness_then_age() {
    let w = World::new().await;
    // Tenant a already holds a job on another node that is alive (its Lease lasts an hour)
    // and full, so fairness puts tenant b before tenant a.
    let other = w.server.client("other");
    other
        .create_lease(&crate::lease::node_lease(
            "other",
            NS,
            3600,
            slots(1),
            slots(0),
            jiff::Timestamp::now(),
        ))
        .await
        .unwrap();
    let held = w
        .control
        .create_job(&job("a-held-9999s", "a", 0, 1))
        .await
        .unwrap();
    let mut claim = held.clone();
    claim.status = Some(WardJobStatus {
        phase: JobPhase::Running,
        node: Some("other".into()),
        attempt: 1,
        ..WardJobStatus::default()
    });
    other.replace_job_status(&claim).await.unwrap();
    w.submit(job("a-old-1s", "a", 0, 1)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.submit(job("a-new-1s", "a", 0, 1)).await;
    w.submit(job("b-only-1s", "b", 0, 1)).await;
    w.submit(job("c-urgent-1s", "c", 5, 1)).await;
    let _node = w.start("n1", slots(1));
    w.until("the four jobs to end", |jobs| {
        jobs.iter()
            .filter(|j| j.phase() == JobPhase::Succeeded)
            .count()
            == 4
    })
    .await;
    let mut runs = w.log.lock().unwrap().clone();
    runs.sort_by_key(|r| r.started);
    let order: Vec<&str> = runs.iter().map(|r| r.job.as_str()).collect();
    assert_eq!(order, ["c-urgent-1s", "b-only-1s", "a-old-1s", "a-new-1s"]);
}

#[tokio::test(start_paused = true)]
async fn a_job_too_big_for_a_small_node_is_left_to_a_big_one() {
    let w = World::new().await;
    w.submit(job("big-20s", "t", 10, 6)).await;
    for i in 0..4 {
        w.submit(job(&format!("small-{i}-5s"), "t", 0, 1)).await;
    }
    let _small = w.start("small", slots(2));
    // The small node works through the small jobs while the big one waits for a node that
    // can hold it.
    w.until("the small jobs to end", |jobs| {
        jobs.iter()
            .filter(|j| j.metadata.name.as_deref().unwrap().starts_with("small"))
            .all(|j| j.phase() == JobPhase::Succeeded)
    })
    .await;
    assert_eq!(w.job("big-20s").phase(), JobPhase::Pending);
    let _big = w.start("big", slots(8));
    w.until_phase("big-20s", JobPhase::Succeeded).await;
    let runs = w.runs_of("big-20s");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].node, "big");
}

#[tokio::test(start_paused = true)]
async fn a_dead_nodes_job_is_reclaimed_after_its_lease_expires() {
    let w = World::new().await;
    w.submit(job("long-120s", "t", 0, 1)).await;
    let (doomed, _, _) = w.start("doomed", slots(1));
    w.until_phase("long-120s", JobPhase::Running).await;
    // The node dies: its task, its runs and its Lease renewal end at once.
    doomed.abort();
    let died = Instant::now();
    let (_survivor, stats, _) = w.start("survivor", slots(1));
    w.until_phase("long-120s", JobPhase::Succeeded).await;
    let j = w.job("long-120s");
    let status = j.status.clone().unwrap();
    assert_eq!(status.attempt, 2);
    assert_eq!(status.node.as_deref(), Some("survivor"));
    assert_eq!(
        status.result.as_deref(),
        Some("/shared/results/long-120s/attempt-2")
    );
    let lost = status
        .conditions
        .iter()
        .find(|c| c.type_ == "NodeLost")
        .unwrap();
    assert!(lost.message.contains("doomed"), "{lost:?}");
    let runs = w.runs_of("long-120s");
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].node.as_str(), runs[0].attempt), ("doomed", 1));
    assert_eq!((runs[1].node.as_str(), runs[1].attempt), ("survivor", 2));
    assert_eq!(runs[1].result_dir, "/shared/results/long-120s/attempt-2");
    // Not before the Lease could have run out: renewed at most 5 s before the death, it
    // lasts 15 s.
    assert!(runs[1].started - died >= Duration::from_secs(10));
    assert_eq!(stats.reclaims.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_node_lost_on_the_last_attempt_fails_the_job() {
    let w = World::new().await;
    let mut j = job("last-120s", "t", 0, 1);
    j.spec.max_attempts = 1;
    w.submit(j).await;
    let (doomed, _, _) = w.start("doomed", slots(1));
    w.until_phase("last-120s", JobPhase::Running).await;
    doomed.abort();
    let _survivor = w.start("survivor", slots(1));
    w.until_phase("last-120s", JobPhase::Failed).await;
    let status = w.job("last-120s").status.unwrap();
    assert_eq!(status.attempt, 1);
    assert!(status.message.unwrap().contains("doomed"));
    assert_eq!(w.runs_of("last-120s").len(), 1);
}

/// A client that can be frozen, as a node whose process is paused: its requests and watch
/// events wait until it is thawed. It counts the job status writes that succeed.
#[derive(Clone)]
struct Freezable {
    inner: FakeClient,
    frozen: watch::Receiver<bool>,
    status_writes: Arc<AtomicU64>,
}

impl Freezable {
    async fn thawed(&self) {
        let mut frozen = self.frozen.clone();
        let _ = frozen.wait_for(|f| !*f).await;
    }

    fn freezing<T: Send + 'static>(&self, stream: BoxStream<'static, T>) -> BoxStream<'static, T> {
        let me = self.clone();
        stream
            .then(move |item| {
                let me = me.clone();
                async move {
                    me.thawed().await;
                    item
                }
            })
            .boxed()
    }

    fn wrote<T>(&self, answer: Result<T, ApiError>) -> Result<T, ApiError> {
        if answer.is_ok() {
            self.status_writes.fetch_add(1, Ordering::SeqCst);
        }
        answer
    }
}

impl ClusterApi for Freezable {
    fn watch_jobs(&self) -> BoxStream<'static, Result<Event<WardJob>, ApiError>> {
        self.freezing(self.inner.watch_jobs())
    }
    async fn get_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.thawed().await;
        self.inner.get_job(name).await
    }
    async fn create_job(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.thawed().await;
        self.inner.create_job(job).await
    }
    async fn replace_job_status(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.thawed().await;
        let answer = self.inner.replace_job_status(job).await;
        self.wrote(answer)
    }
    async fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> Result<WardJob, ApiError> {
        self.thawed().await;
        let answer = self
            .inner
            .patch_job_status(name, resource_version, status)
            .await;
        self.wrote(answer)
    }
    async fn cancel_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.thawed().await;
        self.inner.cancel_job(name).await
    }
    async fn get_pipeline(&self, name: &str) -> Result<WardPipeline, ApiError> {
        self.thawed().await;
        self.inner.get_pipeline(name).await
    }
    async fn create_pipeline(&self, p: &WardPipeline) -> Result<WardPipeline, ApiError> {
        self.thawed().await;
        self.inner.create_pipeline(p).await
    }
    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, ApiError> {
        self.thawed().await;
        self.inner.get_lease(name).await
    }
    async fn create_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.thawed().await;
        self.inner.create_lease(lease).await
    }
    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.thawed().await;
        self.inner.replace_lease(lease).await
    }
    fn watch_leases(&self) -> BoxStream<'static, Result<Event<Lease>, ApiError>> {
        self.freezing(self.inner.watch_leases())
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_comes_back_finds_its_job_reclaimed_and_stops_it() {
    let w = World::new().await;
    w.submit(job("long-600s", "t", 0, 1)).await;
    let (freeze, frozen) = watch::channel(false);
    let paused = Freezable {
        inner: w.server.client("paused"),
        frozen,
        status_writes: Arc::default(),
    };
    let writes = paused.status_writes.clone();
    let node = w.node_with(paused, NodeConfig::new("paused", NS, slots(1)));
    let paused_stats = node.stats();
    let _paused_task = tokio::spawn(node.run(std::future::pending()));
    w.until_phase("long-600s", JobPhase::Running).await;
    freeze.send(true).unwrap();
    let _other = w.start("other", slots(1));
    w.until("the job to be re-claimed", |jobs| {
        jobs[0].attempt() == 2 && jobs[0].phase() == JobPhase::Running
    })
    .await;
    let writes_before_thaw = writes.load(Ordering::SeqCst);
    freeze.send(false).unwrap();
    // Once it sees the re-claim, the node that came back stops its run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.runs_of("long-600s")[0].ended.is_none() {
        assert!(Instant::now() < deadline, "the first run was never stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        w.runs_of("long-600s")[0].ended.as_ref().unwrap().1,
        Outcome::Stopped
    );
    assert_eq!(paused_stats.lost_runs.load(Ordering::Relaxed), 1);
    w.until_phase("long-600s", JobPhase::Succeeded).await;
    let status = w.job("long-600s").status.unwrap();
    assert_eq!((status.node.as_deref(), status.attempt), (Some("other"), 2));
    assert_eq!(
        writes.load(Ordering::SeqCst),
        writes_before_thaw,
        "the node that came back wrote the job it had lost"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_running_job() {
    let w = World::new().await;
    w.submit(job("long-600s", "t", 0, 1)).await;
    let _node = w.start("n1", slots(1));
    w.until_phase("long-600s", JobPhase::Running).await;
    w.control.cancel_job("long-600s").await.unwrap();
    w.until_phase("long-600s", JobPhase::Cancelled).await;
    let runs = w.runs_of("long-600s");
    assert_eq!(runs[0].ended.as_ref().unwrap().1, Outcome::Stopped);
    assert!(runs[0].ended.as_ref().unwrap().0 - runs[0].started < Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_pending_job_is_never_claimed() {
    let w = World::new().await;
    w.submit(job("cancelled-1s", "t", 9, 1)).await;
    w.control.cancel_job("cancelled-1s").await.unwrap();
    w.submit(job("other-1s", "t", 0, 1)).await;
    let _node = w.start("n1", slots(1));
    w.until_phase("other-1s", JobPhase::Succeeded).await;
    assert_eq!(w.job("cancelled-1s").phase(), JobPhase::Pending);
    assert!(w.runs_of("cancelled-1s").is_empty());
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_finishes_short_jobs_and_releases_long_ones() {
    let w = World::new().await;
    w.submit(job("short-10s", "t", 1, 1)).await;
    w.submit(job("long-600s", "t", 0, 1)).await;
    w.submit(job("waiting-1s", "t", 0, 1)).await;
    let (task, _, shutdown) = w.start("n1", slots(2));
    w.until("both to run", |jobs| {
        jobs.iter()
            .filter(|j| j.phase() == JobPhase::Running)
            .count()
            == 2
    })
    .await;
    let asked = Instant::now();
    shutdown.send(true).unwrap();
    task.await.unwrap().unwrap();
    // It ended within its grace (30 s).
    assert!(Instant::now() - asked <= Duration::from_secs(30));
    assert_eq!(w.job("short-10s").phase(), JobPhase::Succeeded);
    let long = w.job("long-600s").status.unwrap();
    assert_eq!(long.phase, JobPhase::Pending);
    assert_eq!(long.attempt, 1, "a release is not a new attempt");
    assert!(long.conditions.iter().any(|c| c.type_ == "Released"));
    // No claims once shutdown was asked for.
    assert_eq!(w.job("waiting-1s").phase(), JobPhase::Pending);
    // Another node takes the released job as its attempt 2.
    let _next = w.start("n2", slots(2));
    w.until_phase("long-600s", JobPhase::Succeeded).await;
    let long = w.job("long-600s").status.unwrap();
    assert_eq!((long.node.as_deref(), long.attempt), (Some("n2"), 2));
}
