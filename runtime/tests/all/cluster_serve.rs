//! `ward serve --cluster`, the control plane, through its real HTTP API: the service opened
//! in cluster mode and served in process, talking to the FAKE API server of `ward-cluster`,
//! with a FAKE node that claims WardJobs through the fake and ends them as told by the
//! pipeline's name (`ok` succeeds, `fails` fails, `holds` runs until cancelled, `waits` is
//! never claimed).

use crate::service::{hash, RAD_ADMIN, RAD_OP};
use crate::support::tempdir;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::{Engine, EngineOptions};
use ward::service::config::ServeConfig;
use ward::service::{api, cluster_dispatch, http, Mode, Service};
use ward_cluster::fake::FakeClient;
use ward_cluster::{ClusterApi, Event, FakeApiServer, JobPhase, WardJob, WardJobStatus};

const DEADLINE: Duration = Duration::from_secs(60);

/// Waits for `what` to give a value, under [`DEADLINE`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A control plane serving its API in process; dropping it stops its tasks (the runtime).
struct ControlPlane {
    url: String,
    state: PathBuf,
    service: Arc<Service>,
    runtime: tokio::runtime::Runtime,
}

/// The directory of one control plane's configuration, state and components, kept across a
/// restart.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempdir();
        let components = dir.path().join("components");
        std::fs::create_dir_all(&components).unwrap();
        // The control plane never runs a component; a node would, from this directory.
        std::fs::write(components.join("fake.wasm"), b"\0asm\x01\0\0\0").unwrap();
        std::fs::write(
            dir.path().join("serve.yaml"),
            format!(
                "listen: 127.0.0.1:0
state: {state}
components: {components}
capacity: {{memory: 1Gi, jobs: 2}}
tenants:
  - name: radiology
    tokens:
      - {{name: operator, role: operator, sha256: {o}}}
      - {{name: admin, role: admin, sha256: {a}}}
",
                state = dir.path().join("state").display(),
                components = components.display(),
                o = hash(RAD_OP),
                a = hash(RAD_ADMIN),
            ),
        )
        .unwrap();
        Site { dir }
    }

    /// Opens the service in cluster mode on this site and starts it against `fake`.
    fn start(&self, fake: &FakeApiServer, caller: &str) -> ControlPlane {
        let config = ServeConfig::load(&self.dir.path().join("serve.yaml")).expect("the config");
        let state = config.state.clone();
        let engine = Arc::new(Engine::new(EngineOptions::default()).expect("the engine"));
        let service = Service::open_in(config, engine, Mode::Cluster).expect("the service opens");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        {
            let _inside = runtime.enter();
            cluster_dispatch::start(&service, fake.client(caller), "ward-test");
        }
        runtime.spawn(http::serve(
            listener,
            api::router(service.clone()),
            service.config.http.clone(),
            service.clone(),
        ));
        ControlPlane {
            url,
            state,
            service,
            runtime,
        }
    }
}

impl ControlPlane {
    fn call(&self, method: &str, path: &str, body: Option<&[u8]>, kind: &str) -> (u16, Value) {
        self.call_as(RAD_OP, method, path, body, kind)
    }

    fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        kind: &str,
    ) -> (u16, Value) {
        let req = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", kind);
        let answer = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        match answer {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let (code, v) = self.call(method, path, bytes.as_deref(), "application/json");
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    }

    /// Stores pipeline `name` (one stage of 64Mi; the fake node reads its name) and returns
    /// its document.
    fn pipeline(&self, name: &str) -> String {
        let yaml = format!(
            "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{path: fake.wasm}}
    input: [{{path: /payload}}]
    requests: {{memory: 64Mi}}
"
        );
        let (code, v) = self.call(
            "POST",
            "/v1/pipelines",
            Some(yaml.as_bytes()),
            "application/yaml",
        );
        assert_eq!(code, 201, "{v}");
        yaml
    }

    fn payload(&self) -> String {
        let dir = tempdir();
        std::fs::write(dir.path().join("image.dcm"), b"not really DICOM").unwrap();
        let tar = ward::service::archive::pack(dir.path()).unwrap();
        let (code, v) = self.call("POST", "/v1/payloads", Some(&tar), "application/x-tar");
        assert_eq!(code, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Creates and queues a job of `pipeline` on a new payload; its id and the payload's.
    fn submit(&self, pipeline: &str) -> (String, String) {
        let payload = self.payload();
        let job = self.ok(
            "POST",
            "/v1/jobs",
            Some(
                json!({"pipeline": pipeline, "payload": payload, "start": true, "max_attempts": 2}),
            ),
        );
        (job["id"].as_str().unwrap().to_string(), payload)
    }

    fn job(&self, id: &str) -> Value {
        self.ok("GET", &format!("/v1/jobs/{id}"), None)
    }

    /// Waits until job `id` is in `state`, and returns it.
    fn wait_state(&self, id: &str, state: &str) -> Value {
        wait_for(&format!("job {id} to be {state}"), || {
            let job = self.job(id);
            (job["state"] == state).then_some(job)
        })
    }

    fn audit_actions(&self, id: &str) -> Vec<String> {
        let (code, page) = self.call_as(
            RAD_ADMIN,
            "GET",
            "/v1/audit?limit=1000",
            None,
            "application/json",
        );
        assert_eq!(code, 200, "{page}");
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["object"] == id)
            .map(|r| r["action"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The WardJob named `id`, once the fake holds it.
fn ward_job(fake: &FakeApiServer, id: &str, until: impl Fn(&WardJob) -> bool) -> WardJob {
    wait_for(&format!("WardJob {id}"), || {
        fake.jobs()
            .into_iter()
            .find(|j| j.metadata.name.as_deref() == Some(id) && until(j))
    })
}

/// A FAKE node: claims every pending, uncancelled WardJob (but those of pipeline `waits`)
/// through the fake, writes a `summary.json` in the attempt's directory, and ends it as the
/// pipeline's name says; a held job that is cancelled ends cancelled.
const FAKE_NODE: &str = "fake-node";

/// Starts a FAKE node on a thread of its own, for as long as the test process runs.
fn start_fake_node(fake: &FakeApiServer) {
    let client = fake.client(FAKE_NODE);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fake_node(client))
    });
}

async fn fake_node(client: FakeClient) {
    let mut events = client.watch_jobs();
    while let Some(Ok(event)) = events.next().await {
        let (Event::Apply(job) | Event::InitApply(job)) = event else {
            continue;
        };
        let name = job.metadata.name.clone().unwrap_or_default();
        let version = job.metadata.resource_version.clone().unwrap_or_default();
        match job.phase() {
            JobPhase::Pending if !job.spec.cancel && job.spec.pipeline.name != "waits" => {
                let mut claim = job.clone();
                claim.status = Some(WardJobStatus {
                    phase: JobPhase::Running,
                    node: Some(FAKE_NODE.into()),
                    attempt: job.attempt() + 1,
                    claimed_at: Some(ward::jobs::rfc3339_utc(std::time::SystemTime::now())),
                    ..Default::default()
                });
                // A lost claim (409) is another writer's win; the next event says more.
                if let Ok(claimed) = client.replace_job_status(&claim).await {
                    finish_as_told(&client, &claimed).await;
                }
            }
            JobPhase::Running if job.spec.cancel && job.holder() == Some(FAKE_NODE) => {
                let status = WardJobStatus {
                    phase: JobPhase::Cancelled,
                    attempt: job.attempt(),
                    message: Some("cancelled on the fake node".into()),
                    ..Default::default()
                };
                let _ = client.patch_job_status(&name, &version, &status).await;
            }
            _ => {}
        }
    }
}

/// Writes the attempt's summary and its final status, as the pipeline's name tells.
async fn finish_as_told(client: &FakeClient, job: &WardJob) {
    let phase = match job.spec.pipeline.name.as_str() {
        "holds" => return,
        "fails" => JobPhase::Failed,
        _ => JobPhase::Succeeded,
    };
    let attempt = job.attempt();
    let dir = Path::new(&job.spec.results).join(format!("attempt-{attempt}"));
    std::fs::create_dir_all(dir.join("results/stage")).unwrap();
    std::fs::write(dir.join("results/stage/out.txt"), b"fake result").unwrap();
    let summary = json!({"status": if phase == JobPhase::Succeeded {"succeeded"} else {"failed"}, "by": FAKE_NODE});
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let status = WardJobStatus {
        phase,
        attempt,
        message: (phase == JobPhase::Failed)
            .then(|| "stage 'stage': the fake node failed it".into()),
        result: Some(dir.display().to_string()),
        ..Default::default()
    };
    let name = job.metadata.name.as_deref().unwrap();
    let version = job.metadata.resource_version.as_deref().unwrap();
    client
        .patch_job_status(name, version, &status)
        .await
        .expect("the fake node's final status");
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path).unwrap().display().to_string()
}

#[test]
fn cluster_a_job_submitted_through_the_api_runs_as_a_ward_job_on_a_node() {
    let fake = FakeApiServer::new();
    let site = Site::new();
    let cp = site.start(&fake, "control-plane");
    let health = cp.ok("GET", "/healthz", None);
    assert_eq!(health["mode"], "cluster", "{health}");
    assert_eq!(health["namespace"], "ward-test", "{health}");
    assert_eq!(health["kubernetes_api_reachable"], true, "{health}");
    let document = cp.pipeline("ok");
    start_fake_node(&fake);
    let (id, payload) = cp.submit("ok");

    let job = ward_job(&fake, &id, |_| true);
    assert_eq!(job.spec.tenant, "radiology");
    assert_eq!(job.spec.pipeline.name, "ok");
    assert_eq!(job.spec.pipeline.object, "radiology-ok-v1");
    assert_eq!(job.spec.pipeline.version, Some(1));
    assert_eq!(job.spec.payload.id, payload);
    assert_eq!(
        job.spec.payload.path,
        absolute(&cp.state.join("payloads").join(&payload))
    );
    assert!(Path::new(&job.spec.payload.path)
        .join("image.dcm")
        .is_file());
    assert_eq!(job.spec.results, absolute(&cp.state.join("jobs").join(&id)));
    assert_eq!(job.spec.requests.memory_bytes, 64 << 20);
    assert_eq!(job.spec.requests.cpu, 1);
    assert_eq!(job.spec.max_attempts, 2);
    assert_eq!(job.spec.priority, 1, "normal");
    assert!(!job.spec.cancel);

    let pipeline = cp
        .runtime
        .block_on(fake.client("test").get_pipeline("radiology-ok-v1"))
        .expect("the WardPipeline");
    assert_eq!(pipeline.spec.document, document);
    assert_eq!(pipeline.spec.version, 1);
    assert_eq!(
        pipeline.spec.components_dir,
        absolute(&cp.service.config.components)
    );

    let done = cp.wait_state(&id, "succeeded");
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["summary"]["by"], FAKE_NODE, "{done}");
    assert!(done["finished"].is_number(), "{done}");
    let tar = ureq::get(&format!("{}/v1/jobs/{id}/results", cp.url))
        .set("Authorization", &format!("Bearer {RAD_OP}"))
        .call()
        .expect("the results");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut tar.into_reader(), &mut bytes).unwrap();
    assert!(
        bytes.windows(11).any(|w| w == b"fake result"),
        "the node's results come back through the API"
    );
    let actions = cp.audit_actions(&id);
    for action in [
        "job.created",
        "job.dispatched",
        "job.running",
        "job.succeeded",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[test]
fn cluster_cancel_through_the_api_reaches_pending_and_running_ward_jobs() {
    let fake = FakeApiServer::new();
    let site = Site::new();
    let cp = site.start(&fake, "control-plane");
    cp.pipeline("waits");
    cp.pipeline("holds");
    start_fake_node(&fake);

    // Pending: no node claims it; the control plane ends it.
    let (pending, _) = cp.submit("waits");
    ward_job(&fake, &pending, |_| true);
    cp.ok("POST", &format!("/v1/jobs/{pending}/cancel"), None);
    let ended = ward_job(&fake, &pending, |j| j.phase() == JobPhase::Cancelled);
    assert!(ended.spec.cancel);
    assert_eq!(ended.attempt(), 0, "no node ever claimed it");
    let job = cp.wait_state(&pending, "cancelled");
    assert_eq!(job["attempts"], 0, "{job}");

    // Running on the fake node: the node ends it.
    let (running, _) = cp.submit("holds");
    cp.wait_state(&running, "running");
    cp.ok("POST", &format!("/v1/jobs/{running}/cancel"), None);
    let ended = ward_job(&fake, &running, |j| j.phase() == JobPhase::Cancelled);
    assert!(ended.spec.cancel);
    let job = cp.wait_state(&running, "cancelled");
    assert_eq!(job["attempts"], 1, "{job}");
    assert!(
        job["failure"]
            .as_str()
            .is_some_and(|f| f.contains("fake node")),
        "{job}"
    );
    // A finished WardJob is not started again under its name.
    let (code, v) = cp.call(
        "POST",
        &format!("/v1/jobs/{running}/start"),
        None,
        "application/json",
    );
    assert_eq!(code, 409, "{v}");
}

#[test]
fn cluster_a_node_failure_fails_the_job_with_its_message() {
    let fake = FakeApiServer::new();
    let site = Site::new();
    let cp = site.start(&fake, "control-plane");
    cp.pipeline("fails");
    start_fake_node(&fake);
    let (id, _) = cp.submit("fails");
    let job = cp.wait_state(&id, "failed");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(
        job["failure"], "stage 'stage': the fake node failed it",
        "{job}"
    );
    assert!(cp.audit_actions(&id).iter().any(|a| a == "job.failed"));
}

#[test]
fn cluster_a_restarted_control_plane_creates_no_duplicates_and_catches_up() {
    let fake = FakeApiServer::new();
    let site = Site::new();
    let first = site.start(&fake, "control-plane");
    first.pipeline("waits");
    let (a, _) = first.submit("waits");
    let (b, _) = first.submit("waits");
    ward_job(&fake, &a, |_| true);
    ward_job(&fake, &b, |_| true);
    // The control plane stops (its tasks end with its runtime) and, while it is down, a
    // node runs job a to the end.
    let ControlPlane { runtime, .. } = first;
    runtime.shutdown_timeout(Duration::from_secs(5));
    let node = fake.client("late-node");
    let late = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    late.block_on(async {
        let job = node.get_job(&a).await.unwrap();
        let mut claim = job.clone();
        claim.status = Some(WardJobStatus {
            phase: JobPhase::Running,
            node: Some("late-node".into()),
            attempt: 1,
            ..Default::default()
        });
        let claimed = node.replace_job_status(&claim).await.unwrap();
        // Job a's pipeline is `waits`; what ends it here is this node, as told.
        let mut told = claimed.clone();
        told.spec.pipeline.name = "ok".into();
        finish_as_told(&node, &told).await;
    });

    let second = site.start(&fake, "restarted-control-plane");
    let job = second.wait_state(&a, "succeeded");
    assert_eq!(job["attempts"], 1, "{job}");
    // Both queued rows were dispatched again; both WardJobs already existed.
    wait_for("the restarted control plane to dispatch", || {
        let requests = fake.requests();
        requests
            .verbs
            .get("restarted-control-plane")
            .is_some_and(|v| v.contains(&("create".to_string(), "wardjobs".to_string())))
            .then_some(())
    });
    let names: Vec<String> = fake
        .jobs()
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&a) && names.contains(&b), "{names:?}");
    assert_eq!(second.job(&b)["state"], "queued");
    let dispatched = second
        .audit_actions(&b)
        .iter()
        .filter(|a| *a == "job.dispatched")
        .count();
    assert_eq!(dispatched, 1, "job b was handed over once");
}
