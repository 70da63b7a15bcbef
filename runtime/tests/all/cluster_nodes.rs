//! Real `ward node` processes against Ward's FAKE Kubernetes API server (its HTTP front, in
//! this test process, on loopback): each node a separate `ward` process with its own
//! kubeconfig, running the real `misbehave` conformance component from a shared directory.
//! What is checked: every job runs once across racing nodes; a killed node's job is run
//! again by another node as attempt 2 once its Lease expires; a node that was paused past its
//! Lease and comes back stops its re-claimed run and writes nothing; SIGTERM lets a short job
//! finish and releases a long one.

use crate::support::{component, tempdir, ward};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use ward_cluster::fake::FakeClient;
use ward_cluster::resources::{JobRequests, PayloadRef, PipelineRef, WardPipelineSpec};
use ward_cluster::{ClusterApi, FakeApiServer, JobPhase, WardJob, WardJobSpec, WardPipeline};

const NAMESPACE: &str = "ward-test";
/// Generous: CI machines are small and busy.
const DEADLINE: Duration = Duration::from_secs(120);

fn wait_for<T>(what: &str, logs: &[&NodeProcess], mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = logs.iter().map(|n| n.log()).collect();
            panic!(
                "timed out waiting for {what}; node logs:\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The FAKE API server served over HTTP, and the shared volume the nodes mount.
struct Cluster {
    fake: FakeApiServer,
    url: String,
    shared: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    fn start() -> Cluster {
        let fake = FakeApiServer::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(ward_cluster::fake_http::serve(fake.clone(), listener));
        let shared = tempdir();
        let components = shared.path().join("components");
        std::fs::create_dir_all(&components).unwrap();
        std::fs::copy(component("misbehave"), components.join("misbehave.wasm")).unwrap();
        Cluster {
            fake,
            url,
            shared,
            runtime,
        }
    }

    fn client(&self) -> FakeClient {
        self.fake.client("test")
    }

    /// Stores a WardPipeline of one `misbehave` stage doing `behaviour` with `parameters`.
    fn pipeline(&self, name: &str, behaviour: &str, parameters: &str, timeout: &str) {
        let document = format!(
            "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: {behaviour}{parameters}}}
    input: [{{path: /payload}}]
    requests: {{memory: 64Mi{timeout}}}
"
        );
        let pipeline = WardPipeline::new(
            name,
            WardPipelineSpec {
                tenant: "radiology".into(),
                name: name.into(),
                version: 1,
                document,
                components_dir: self.shared.path().join("components").display().to_string(),
                components: Vec::new(),
            },
        );
        self.runtime
            .block_on(self.client().create_pipeline(&pipeline))
            .expect("the WardPipeline is created");
    }

    /// Creates WardJob `name` of `pipeline` on a payload of its own on the shared volume.
    fn job(&self, name: &str, pipeline: &str) {
        let payload = self.shared.path().join("payloads").join(name);
        std::fs::create_dir_all(&payload).unwrap();
        std::fs::write(payload.join("notes.txt"), b"a payload file").unwrap();
        let job = WardJob::new(
            name,
            WardJobSpec {
                tenant: "radiology".into(),
                pipeline: PipelineRef {
                    name: pipeline.into(),
                    object: pipeline.into(),
                    version: Some(1),
                },
                payload: PayloadRef {
                    id: name.into(),
                    path: payload.display().to_string(),
                },
                priority: 1,
                requests: JobRequests {
                    memory_bytes: 64 << 20,
                    cpu: 1,
                    gpu_memory_bytes: 0,
                },
                max_attempts: 3,
                cancel: false,
                datasets: Default::default(),
                results: self.results(name).display().to_string(),
            },
        );
        self.runtime
            .block_on(self.client().create_job(&job))
            .expect("the WardJob is created");
    }

    fn results(&self, job: &str) -> PathBuf {
        self.shared.path().join("jobs").join(job)
    }

    fn get(&self, job: &str) -> WardJob {
        self.runtime
            .block_on(self.client().get_job(job))
            .expect("the WardJob")
    }

    /// Waits until `job` satisfies `until`, and returns it.
    fn wait_job(
        &self,
        job: &str,
        logs: &[&NodeProcess],
        until: impl Fn(&WardJob) -> bool,
    ) -> WardJob {
        wait_for(&format!("WardJob {job}"), logs, || {
            let j = self.get(job);
            until(&j).then_some(j)
        })
    }

    /// Starts `ward node --name NAME` with a 3 s Lease renewed every second.
    fn node(&self, name: &str, extra: &[&str]) -> NodeProcess {
        let dir = tempdir();
        let kubeconfig = dir.path().join("kubeconfig");
        ward_cluster::fake_http::write_kubeconfig(&kubeconfig, &self.url, name, NAMESPACE).unwrap();
        let log = dir.path().join("node.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = ward()
            .args(["node", "--name", name, "--shared"])
            .arg(self.shared.path())
            .args(["--memory", "1Gi", "--slots", "2"])
            .args(["--lease-seconds", "3", "--renew-seconds", "1"])
            .args(["--health-listen", "127.0.0.1:0"])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("WARD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("ward node starts");
        let mut node = NodeProcess {
            name: name.into(),
            child,
            log,
            health: String::new(),
            _dir: dir,
        };
        node.health = node.read_health_address();
        node
    }
}

/// One `ward node` process; dropping it kills it.
struct NodeProcess {
    name: String,
    child: Child,
    log: PathBuf,
    health: String,
    _dir: tempfile::TempDir,
}

impl NodeProcess {
    /// The health URL the node prints first.
    fn read_health_address(&mut self) -> String {
        use std::io::BufRead;
        let stdout = self.child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line.split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no health address in {line:?}; log:\n{}", self.log()))
            .to_string()
    }

    fn log(&self) -> String {
        format!(
            "--- {} ---\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// `GET /healthz`: its status code and body.
    fn health(&self) -> (u16, Value) {
        match ureq::get(&self.health).call() {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("{}: {e}", self.health),
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// Waits for the process to exit, and returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn summary_status(results: &Path, attempt: u32) -> Option<String> {
    let text =
        std::fs::read_to_string(results.join(format!("attempt-{attempt}/summary.json"))).ok()?;
    let summary: Value = serde_json::from_str(&text).ok()?;
    summary["status"].as_str().map(str::to_string)
}

fn held_by<'a>(node: &'a str) -> impl Fn(&WardJob) -> bool + 'a {
    move |j| j.holder() == Some(node) && j.phase() == JobPhase::Running
}

#[test]
fn cluster_nodes_race_for_jobs_and_run_each_once() {
    let cluster = Cluster::start();
    cluster.pipeline("nap", "sleep", ", sleep-ms: 300", "");
    let a = cluster.node("node-a", &[]);
    let b = cluster.node("node-b", &[]);
    for node in [&a, &b] {
        let (code, health) = wait_for("the node's readiness", &[node], || {
            let (code, health) = node.health();
            (code == 200).then_some((code, health))
        });
        assert_eq!(code, 200);
        assert_eq!(health["lease_held"], true, "{health}");
        assert_eq!(health["mode"], "node", "{health}");
    }
    let jobs: Vec<String> = (0..8).map(|i| format!("job-{i}")).collect();
    for job in &jobs {
        cluster.job(job, "nap");
    }
    for job in &jobs {
        let done = cluster.wait_job(job, &[&a, &b], |j| j.phase().is_final());
        let status = done.status.as_ref().unwrap();
        assert_eq!(done.phase(), JobPhase::Succeeded, "{job}: {status:?}");
        assert_eq!(status.attempt, 1, "{job} ran once: {status:?}");
        let node = status.node.as_deref().unwrap();
        assert!(["node-a", "node-b"].contains(&node), "{status:?}");
        assert_eq!(status.stages.len(), 1, "{status:?}");
        assert_eq!(status.stages[0].state, "succeeded", "{status:?}");
        assert!(
            status.stages[0].wall_ms.is_some_and(|ms| ms >= 300),
            "{status:?}"
        );
        let results = cluster.results(job);
        assert_eq!(summary_status(&results, 1).as_deref(), Some("succeeded"));
        assert!(!results.join("attempt-2").exists(), "{job} has one attempt");
    }
    let claims: u64 = [&a, &b]
        .iter()
        .map(|n| n.health().1["claims"].as_u64().unwrap())
        .sum();
    assert_eq!(claims, 8, "the nodes' claims won, together");
    let requests = cluster.fake.requests();
    for node in ["node-a", "node-b"] {
        assert!(
            requests.by_caller.get(node).is_some_and(|n| *n > 0),
            "{node} called the API server: {:?}",
            requests.by_caller
        );
    }
}

#[test]
fn cluster_a_killed_node_s_job_is_run_again_by_another_node() {
    let cluster = Cluster::start();
    cluster.pipeline("nap", "sleep", ", sleep-ms: 5000", "");
    let mut a = cluster.node("node-a", &[]);
    cluster.job("lost", "nap");
    cluster.wait_job("lost", &[&a], held_by("node-a"));
    a.child.kill().unwrap();
    a.wait_exit();
    let b = cluster.node("node-b", &[]);
    let done = cluster.wait_job("lost", &[&a, &b], |j| j.phase().is_final());
    let status = done.status.as_ref().unwrap();
    assert_eq!(done.phase(), JobPhase::Succeeded, "{status:?}");
    assert_eq!(status.attempt, 2, "re-claimed as attempt 2: {status:?}");
    assert_eq!(status.node.as_deref(), Some("node-b"), "{status:?}");
    let results = cluster.results("lost");
    assert_eq!(summary_status(&results, 2).as_deref(), Some("succeeded"));
    assert_eq!(
        summary_status(&results, 1).as_deref(),
        Some("running"),
        "the killed attempt's directory is as it left it: attempt 2 wrote elsewhere"
    );
    assert_eq!(b.health().1["reclaims"], 1, "{}", b.log());
}

#[test]
fn cluster_a_node_back_from_a_pause_stops_the_job_another_node_reclaimed() {
    let cluster = Cluster::start();
    cluster.pipeline("nap", "sleep", ", sleep-ms: 6000", "");
    let a = cluster.node("node-a", &[]);
    cluster.job("taken", "nap");
    cluster.wait_job("taken", &[&a], held_by("node-a"));
    // Paused (a partitioned or frozen node): its Lease runs out and node-b takes the job.
    a.signal("STOP");
    let b = cluster.node("node-b", &[]);
    cluster.wait_job("taken", &[&a, &b], held_by("node-b"));
    a.signal("CONT");
    wait_for("node-a to give up its run", &[&a, &b], || {
        (a.health().1["lost_runs"] == 1).then_some(())
    });
    let done = cluster.wait_job("taken", &[&a, &b], |j| j.phase().is_final());
    let status = done.status.as_ref().unwrap();
    assert_eq!(done.phase(), JobPhase::Succeeded, "{status:?}");
    assert_eq!(status.attempt, 2, "{status:?}");
    assert_eq!(status.node.as_deref(), Some("node-b"), "{status:?}");
    // node-a's run ended long before node-b's (it started first) and wrote no status: the
    // job is as node-b left it, and node-a holds nothing.
    assert_eq!(a.health().1["running_jobs"], 0, "{}", a.log());
    let results = cluster.results("taken");
    assert_eq!(summary_status(&results, 2).as_deref(), Some("succeeded"));
}

#[test]
fn cluster_sigterm_lets_a_short_job_finish_and_releases_a_long_one() {
    let cluster = Cluster::start();
    cluster.pipeline("short", "sleep", ", sleep-ms: 4000", "");
    cluster.pipeline("endless", "spin", "", ", timeout: 10m");
    let mut a = cluster.node("node-a", &["--grace-seconds", "10"]);
    cluster.job("short", "short");
    cluster.job("endless", "endless");
    for job in ["short", "endless"] {
        cluster.wait_job(job, &[&a], |j| {
            held_by("node-a")(j)
                && j.status
                    .as_ref()
                    .is_some_and(|s| s.stages.iter().any(|st| st.state == "running"))
        });
    }
    a.signal("TERM");
    assert_eq!(
        a.wait_exit(),
        0,
        "a node stops cleanly on SIGTERM:\n{}",
        a.log()
    );
    let short = cluster.get("short");
    assert_eq!(short.phase(), JobPhase::Succeeded, "{:?}", short.status);
    assert_eq!(short.attempt(), 1);
    let endless = cluster.get("endless");
    let status = endless.status.as_ref().unwrap();
    assert_eq!(endless.phase(), JobPhase::Pending, "released: {status:?}");
    assert_eq!(status.attempt, 1, "{status:?}");
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("released by node node-a")),
        "{status:?}"
    );
    assert!(
        status.conditions.iter().any(|c| c.type_ == "Released"),
        "{status:?}"
    );
}

/// `ward serve --cluster` as a process of its own, talking to the FAKE API server over HTTP.
struct ControlPlaneProcess {
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for ControlPlaneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts the control plane with its state and components on the shared volume.
    fn control_plane(&self) -> ControlPlaneProcess {
        use crate::service::{hash, RAD_OP};
        use std::io::BufRead;
        let dir = tempdir();
        let kubeconfig = dir.path().join("kubeconfig");
        ward_cluster::fake_http::write_kubeconfig(
            &kubeconfig,
            &self.url,
            "control-plane",
            NAMESPACE,
        )
        .unwrap();
        let config = dir.path().join("serve.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0
state: {state}
components: {components}
capacity: {{memory: 1Gi, jobs: 2}}
tenants:
  - name: radiology
    tokens:
      - {{name: operator, role: operator, sha256: {o}}}
",
                state = self.shared.path().join("state").display(),
                components = self.shared.path().join("components").display(),
                o = hash(RAD_OP),
            ),
        )
        .unwrap();
        let mut child = ward()
            .args(["serve", "--cluster", "--config"])
            .arg(&config)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("ward serve starts");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("ward serve: listening on ")
                    .map(str::to_string)
            })
            .expect("ward serve says where it listens");
        ControlPlaneProcess {
            url,
            child,
            _dir: dir,
        }
    }
}

impl ControlPlaneProcess {
    fn call(&self, method: &str, path: &str, body: &[u8], kind: &str) -> Value {
        let req = ureq::request(method, &format!("{}{path}", self.url))
            .set(
                "Authorization",
                &format!("Bearer {}", crate::service::RAD_OP),
            )
            .set("Content-Type", kind);
        let answer = if method == "GET" {
            req.call()
        } else {
            req.send_bytes(body)
        };
        match answer {
            Ok(r) => r.into_json().unwrap_or(Value::Null),
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
}

#[test]
fn cluster_a_job_sent_to_the_control_plane_process_runs_on_a_node_process() {
    let cluster = Cluster::start();
    let cp = cluster.control_plane();
    let node = cluster.node("node-a", &[]);
    let health = cp.call("GET", "/healthz", b"", "application/json");
    assert_eq!(health["mode"], "cluster", "{health}");
    cp.call(
        "POST",
        "/v1/pipelines",
        b"api-version: 0.1
name: inventory
operators:
  - name: stage
    component: {path: misbehave.wasm}
    parameters: {behaviour: sleep, sleep-ms: 100}
    input: [{path: /payload}]
    requests: {memory: 64Mi}
",
        "application/yaml",
    );
    let payload_dir = tempdir();
    std::fs::write(payload_dir.path().join("image.dcm"), b"a payload file").unwrap();
    let tar = ward::service::archive::pack(payload_dir.path()).unwrap();
    let payload = cp.call("POST", "/v1/payloads", &tar, "application/x-tar");
    let body =
        serde_json::json!({"pipeline": "inventory", "payload": payload["id"], "start": true});
    let job = cp.call(
        "POST",
        "/v1/jobs",
        body.to_string().as_bytes(),
        "application/json",
    );
    let id = job["id"].as_str().unwrap().to_string();
    let done = wait_for(&format!("job {id} to end"), &[&node], || {
        let job = cp.call("GET", &format!("/v1/jobs/{id}"), b"", "application/json");
        ["succeeded", "failed", "cancelled"]
            .contains(&job["state"].as_str().unwrap_or_default())
            .then_some(job)
    });
    assert_eq!(done["state"], "succeeded", "{done}\n{}", node.log());
    assert_eq!(done["attempts"], 1, "{done}");
    let ward_job = cluster.get(&id);
    assert_eq!(
        ward_job.status.as_ref().unwrap().node.as_deref(),
        Some("node-a")
    );
    // What the node's stage wrote comes back through the control plane's API.
    let tar = ureq::get(&format!("{}/v1/jobs/{id}/results", cp.url))
        .set(
            "Authorization",
            &format!("Bearer {}", crate::service::RAD_OP),
        )
        .call()
        .expect("the results");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut tar.into_reader(), &mut bytes).unwrap();
    assert!(
        contains(&bytes, b"inventory.json"),
        "the stage's inventory is in the results"
    );
    assert!(
        contains(&bytes, b"\"tenant\": \"radiology\""),
        "the stage ran as the job's tenant"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
