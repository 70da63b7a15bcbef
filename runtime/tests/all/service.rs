//! `ward serve` through its HTTP API, as clients use it: the real binary, real SQLite, real
//! stage components.

use crate::dicom_scp::{free_port, wait_for_port, Killed};
use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub const RAD_ADMIN: &str = "rad-admin-token";
pub const RAD_OP: &str = "rad-operator-token";
pub const RAD_VIEW: &str = "rad-viewer-token";
pub const CARD_OP: &str = "cardio-operator-token";
/// A cardio token that expired in 2001.
pub const EXPIRED: &str = "cardio-expired-token";
/// The node's metrics scraper.
pub const METRICS: &str = "node-metrics-token";

pub fn hash(token: &str) -> String {
    ward::service::config::token_hash(token)
}

/// A running `ward serve` and its state directory.
pub struct Server {
    pub url: String,
    pub state: PathBuf,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
    process: Option<Killed>,
}

impl Server {
    /// A service with tenants `radiology` (admin, operator, viewer tokens; may submit at
    /// `immediate`) and `cardio` (one operator token, at most `cardio_jobs` jobs at once, up
    /// to `higher`), a `metrics` token, `jobs` job slots and `memory` of capacity.
    pub fn start(jobs: usize, memory: &str, cardio_jobs: usize) -> Server {
        Server::start_in(tempdir(), jobs, memory, cardio_jobs, "", "http")
    }

    /// As `start`, in `dir`, with `extra` added to the configuration, answering on `scheme`.
    pub fn start_in(
        dir: tempfile::TempDir,
        jobs: usize,
        memory: &str,
        cardio_jobs: usize,
        extra: &str,
        scheme: &str,
    ) -> Server {
        Server::start_with(dir, jobs, memory, cardio_jobs, extra, "", scheme)
    }

    /// As `start_in`, with `tenants` (YAML list items) after the two tenants; `extra` may
    /// give its own `max-upload` (1Mi otherwise).
    pub fn start_with(
        dir: tempfile::TempDir,
        jobs: usize,
        memory: &str,
        cardio_jobs: usize,
        extra: &str,
        tenants: &str,
        scheme: &str,
    ) -> Server {
        let max_upload = if extra.contains("max-upload:") {
            ""
        } else {
            "max-upload: 1Mi"
        };
        let port = free_port();
        let config = dir.path().join("serve.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}
state: state
components: {components}
capacity: {{memory: {memory}, jobs: {jobs}}}
{max_upload}
metrics: {{tokens: [{{name: prometheus, sha256: {m}}}]}}
{extra}
tenants:
  - name: radiology
    max-priority: immediate
    tokens:
      - {{name: admin, role: admin, sha256: {a}}}
      - {{name: operator, role: operator, sha256: {o}}}
      - {{name: viewer, role: viewer, sha256: {v}}}
    stow: {{pipelines: [inventory], priority: higher}}
  - name: cardio
    tokens:
      - {{name: operator, role: operator, sha256: {c}}}
      - {{name: old, role: admin, sha256: {x}, expires: '1000000000'}}
    quotas: {{concurrent-jobs: {cardio_jobs}}}
{tenants}
",
                components = components_dir().display(),
                a = hash(RAD_ADMIN),
                o = hash(RAD_OP),
                v = hash(RAD_VIEW),
                c = hash(CARD_OP),
                x = hash(EXPIRED),
                m = hash(METRICS),
            ),
        )
        .unwrap();
        let mut server = Server {
            url: format!("{scheme}://127.0.0.1:{port}"),
            state: dir.path().join("state"),
            config,
            _dir: dir,
            process: None,
        };
        server.launch();
        server
    }

    pub fn launch(&mut self) {
        // The service's log, kept beside its configuration for a failing test to show.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.config.with_file_name("serve.log"))
            .unwrap();
        let child = ward()
            .args(["serve", "--config", self.config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        wait_for_port(port);
        self.process = Some(Killed(child));
    }

    /// The process id of the running service.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").0.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.process = None;
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = ureq::request(method, &format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match r {
            Ok(r) => {
                let code = r.status();
                (code, r.into_json().unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    pub fn ok(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (code, v) = self.call(method, path, Some(token), body);
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    }

    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> (u16, Value) {
        let r = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", content_type)
            .send_bytes(bytes);
        match r {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// As `send_raw`, with the answer's headers (names in lower case).
    pub fn send_with_headers(
        &self,
        method: &str,
        path: &str,
        token: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> (u16, std::collections::HashMap<String, String>, Value) {
        let r = ureq::request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", content_type)
            .send_bytes(bytes);
        let r = match r {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let headers = r
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                let value = r.header(&name)?.to_string();
                Some((name.to_ascii_lowercase(), value))
            })
            .collect();
        (r.status(), headers, r.into_json().unwrap_or(Value::Null))
    }

    pub fn bytes(&self, path: &str, token: &str) -> Vec<u8> {
        let r = ureq::get(&format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut out).unwrap();
        out
    }

    /// Stores a pipeline of one misbehave stage with `behaviour` and `extra` parameters.
    pub fn pipeline(&self, token: &str, name: &str, behaviour: &str, requests: &str) -> Value {
        let yaml = format!(
            "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: {behaviour}, sleep-ms: '300'}}
    input: [{{path: /payload}}]
    requests: {{{requests}}}
"
        );
        let (code, v) = self.send_raw(
            "POST",
            "/v1/pipelines",
            token,
            "application/yaml",
            yaml.as_bytes(),
        );
        assert_eq!(code, 201, "{v}");
        v
    }

    /// Uploads `dir` as a payload.
    pub fn payload(&self, token: &str, dir: &Path) -> String {
        let tar = ward::service::archive::pack(dir).unwrap();
        let (code, v) = self.send_raw("POST", "/v1/payloads", token, "application/x-tar", &tar);
        assert_eq!(code, 201, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    pub fn job(
        &self,
        token: &str,
        pipeline: &str,
        payload: &str,
        priority: &str,
        start: bool,
    ) -> String {
        let v = self.ok(
            "POST",
            "/v1/jobs",
            token,
            Some(json!({"pipeline": pipeline, "payload": payload, "priority": priority, "start": start})),
        );
        v["id"].as_str().unwrap().to_string()
    }

    /// The caller's tenant's whole audit trail, page after page.
    pub fn audit(&self, token: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = "/v1/audit?limit=1000".to_string();
        loop {
            let page = self.ok("GET", &path, token, None);
            all.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_i64() {
                Some(next) => path = format!("/v1/audit?limit=1000&after={next}"),
                None => return all,
            }
        }
    }

    /// Waits until job `id` has ended and returns it.
    pub fn wait(&self, token: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.ok("GET", &format!("/v1/jobs/{id}"), token, None);
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_job_goes_from_upload_to_results_through_the_api() {
    let server = Server::start(2, "4Gi", 2);
    let (code, health) = server.call("GET", "/healthz", None, None);
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    let pipeline = server.pipeline(RAD_OP, "inventory", "ok", "");
    assert_eq!(pipeline["version"], 1);
    assert_eq!(
        server.pipeline(RAD_OP, "inventory", "ok", "")["version"],
        2,
        "a new version"
    );
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let id = server.job(RAD_OP, "inventory", &payload, "normal", false);
    assert_eq!(
        server.ok("GET", &format!("/v1/jobs/{id}"), RAD_VIEW, None)["state"],
        "created",
        "not started until asked"
    );
    server.ok("POST", &format!("/v1/jobs/{id}/start"), RAD_OP, None);
    let job = server.wait(RAD_VIEW, &id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["summary"]["status"], "succeeded");
    assert_eq!(job["attempts"], 1);
    let logs = String::from_utf8(server.bytes(&format!("/v1/jobs/{id}/logs"), RAD_VIEW)).unwrap();
    assert!(logs.contains("==> stage.log <=="), "{logs}");
    let results = tempdir();
    let tar = server.bytes(&format!("/v1/jobs/{id}/results?stage=stage"), RAD_VIEW);
    ward::service::archive::unpack(&tar[..], results.path(), u64::MAX).unwrap();
    assert!(results.path().join("results/inventory.json").is_file());
    let back = tempdir();
    let tar = server.bytes(&format!("/v1/payloads/{payload}/archive"), RAD_VIEW);
    ward::service::archive::unpack(&tar[..], back.path(), u64::MAX).unwrap();
    assert_eq!(
        ward::volumes::tree_digest(back.path()).unwrap(),
        ward::volumes::tree_digest(payload_dir.path()).unwrap(),
        "the payload comes back as uploaded"
    );
    let (code, list) = server.call("GET", "/v1/jobs?page_size=1", Some(RAD_VIEW), None);
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let metrics = String::from_utf8(server.bytes("/metrics", METRICS)).unwrap();
    assert!(
        metrics.contains("ward_jobs{state=\"succeeded\"} 1"),
        "{metrics}"
    );
}

#[test]
fn no_route_lets_one_tenant_see_or_touch_another_tenants_objects() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let job = server.job(RAD_OP, "inventory", &payload, "normal", true);
    server.wait(RAD_OP, &job);
    for (method, path) in [
        ("GET", format!("/v1/jobs/{job}")),
        ("POST", format!("/v1/jobs/{job}/start")),
        ("POST", format!("/v1/jobs/{job}/cancel")),
        ("GET", format!("/v1/jobs/{job}/logs")),
        ("GET", format!("/v1/jobs/{job}/results")),
        ("GET", format!("/v1/payloads/{payload}")),
        ("GET", format!("/v1/payloads/{payload}/archive")),
        ("GET", "/v1/pipelines/inventory".to_string()),
    ] {
        let (code, body) = server.call(method, &path, Some(CARD_OP), None);
        assert_eq!(code, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not-found");
    }
    let (code, _) = server.call(
        "POST",
        "/v1/jobs",
        Some(CARD_OP),
        Some(json!({"pipeline": "inventory", "payload": payload})),
    );
    assert_eq!(
        code, 404,
        "cardio cannot run radiology's pipeline on its payload"
    );
    for list in ["/v1/jobs", "/v1/payloads", "/v1/pipelines"] {
        let v = server.ok("GET", list, CARD_OP, None);
        assert!(v["items"].as_array().unwrap().is_empty(), "{list}: {v}");
    }
    // Without a valid token nothing answers; a viewer cannot change anything.
    assert_eq!(server.call("GET", "/v1/jobs", None, None).0, 401);
    assert_eq!(server.call("GET", "/v1/jobs", Some("wrong"), None).0, 401);
    let (code, body) = server.call("GET", "/v1/jobs", Some(EXPIRED), None);
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Radiology has no GPU quota: a stage asking for GPU memory is refused.
    server.pipeline(RAD_OP, "on-gpu", "ok", "gpu-memory: 1Gi");
    let (code, body) = server.call(
        "POST",
        "/v1/jobs",
        Some(RAD_OP),
        Some(json!({"pipeline": "on-gpu", "payload": payload})),
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("over-quota")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("GPU"));
    let (code, body) = server.call(
        "POST",
        &format!("/v1/jobs/{job}/start"),
        Some(RAD_VIEW),
        None,
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(server.call("GET", "/v1/audit", Some(RAD_OP), None).0, 403);
    let records = server.audit(RAD_ADMIN);
    assert!(records.iter().all(|r| r["tenant"] == "radiology"));
    assert!(records.iter().any(|r| r["action"] == "job.succeeded"));
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let before = server.ok("GET", "/v1/payloads", RAD_OP, None);
    let cases: Vec<(u16, &str, (u16, Value))> = vec![
        (400, "bad-json", server.send_raw("POST", "/v1/jobs", RAD_OP, "application/json", b"{not json")),
        (404, "not-found", server.call("POST", "/v1/jobs", Some(RAD_OP), Some(json!({"pipeline": "nope", "payload": payload})))),
        (400, "bad-priority", server.call("POST", "/v1/jobs", Some(RAD_OP), Some(json!({"pipeline": "inventory", "payload": payload, "priority": "urgent"})))),
        (400, "bad-archive", server.send_raw("POST", "/v1/payloads", RAD_OP, "application/x-tar", b"this is not a tar archive at all")),
        (413, "too-large", server.send_raw("POST", "/v1/payloads", RAD_OP, "application/x-tar", &big_tar())),
        (400, "bad-archive", server.send_raw("POST", "/v1/payloads", RAD_OP, "application/x-tar", &escaping_tar())),
        (400, "invalid-pipeline", server.send_raw("POST", "/v1/pipelines", RAD_OP, "application/yaml", b"api-version: 0.1\nname: x\noperators:\n  - name: a\n    component: {path: ../../../etc/passwd}\n")),
    ];
    for (code, error, (got, body)) in cases {
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (code, Some(error)),
            "{body}"
        );
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        server.ok("GET", "/v1/payloads", RAD_OP, None),
        before,
        "nothing half-stored"
    );
    let uploads: Vec<_> = std::fs::read_dir(server.state.join("uploads"))
        .unwrap()
        .collect();
    assert!(uploads.is_empty(), "no upload left behind");
}

pub fn big_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = vec![7u8; 2 << 20];
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "big.bin", &data[..]).unwrap();
    b.into_inner().unwrap()
}

fn escaping_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"x";
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn the_queue_runs_immediate_first_then_by_priority() {
    let server = Server::start(1, "4Gi", 2);
    server.pipeline(RAD_OP, "slow", "sleep", "");
    server.pipeline(RAD_OP, "quick", "noop", "");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let blocker = server.job(RAD_OP, "slow", &payload, "normal", true);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.ok("GET", &format!("/v1/jobs/{blocker}"), RAD_OP, None)["state"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let order = ["lower", "normal", "higher", "immediate"];
    let ids: Vec<String> = order
        .iter()
        .map(|p| server.job(RAD_OP, "quick", &payload, p, true))
        .collect();
    let started: Vec<f64> = ids
        .iter()
        .map(|id| server.wait(RAD_OP, id)["started"].as_f64().unwrap())
        .collect();
    let mut by_start: Vec<(f64, &str)> = started.iter().copied().zip(order).collect();
    by_start.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let ran: Vec<&str> = by_start.iter().map(|(_, p)| *p).collect();
    assert_eq!(ran, ["immediate", "higher", "normal", "lower"]);
}

/// Intervals [started, finished] of jobs.
fn spans(server: &Server, token: &str, ids: &[String]) -> Vec<(f64, f64)> {
    ids.iter()
        .map(|id| {
            let j = server.wait(token, id);
            assert_eq!(j["state"], "succeeded", "{j}");
            (
                j["started"].as_f64().unwrap(),
                j["finished"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn overlaps(spans: &[(f64, f64)]) -> bool {
    (0..spans.len()).any(|i| {
        (0..spans.len()).any(|j| i != j && spans[i].0 < spans[j].1 && spans[j].0 < spans[i].1)
    })
}

#[test]
fn big_jobs_wait_for_memory_and_a_tenant_stays_within_its_quota() {
    let server = Server::start(4, "4Gi", 1);
    server.pipeline(RAD_OP, "big", "sleep", "memory: 3Gi");
    server.pipeline(RAD_OP, "small", "sleep", "memory: 64Mi");
    server.pipeline(CARD_OP, "small", "sleep", "memory: 64Mi");
    let rad_dir = small_payload();
    let rad = server.payload(RAD_OP, rad_dir.path());
    let card = server.payload(CARD_OP, rad_dir.path());
    let big: Vec<String> = (0..2)
        .map(|_| server.job(RAD_OP, "big", &rad, "normal", true))
        .collect();
    let cardio: Vec<String> = (0..3)
        .map(|_| server.job(CARD_OP, "small", &card, "normal", true))
        .collect();
    let small: Vec<String> = (0..2)
        .map(|_| server.job(RAD_OP, "small", &rad, "normal", true))
        .collect();
    assert!(
        !overlaps(&spans(&server, RAD_OP, &big)),
        "two 3Gi jobs never share 4Gi"
    );
    assert!(
        !overlaps(&spans(&server, CARD_OP, &cardio)),
        "cardio runs one job at a time"
    );
    let mut all = spans(&server, RAD_OP, &small);
    all.extend(spans(&server, CARD_OP, &cardio));
    assert!(overlaps(&all), "other work runs beside");
}

#[test]
fn the_audit_trail_verifies_and_a_changed_record_is_found() {
    let mut server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let job = server.job(RAD_OP, "inventory", &payload, "normal", true);
    server.wait(RAD_OP, &job);
    server.kill();
    let state = server.state.to_str().unwrap().to_string();
    let ok = run_ward(&["audit", "verify", "--state", &state]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("audit trail intact"), "{}", ok.stdout);
    let db = rusqlite::Connection::open(server.state.join("ward.db")).unwrap();
    db.execute(
        "UPDATE audit SET detail = 'nothing happened' WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let broken = run_ward(&["audit", "verify", "--state", &state]);
    assert_eq!(broken.code, 1);
    assert!(
        broken.stdout.contains("audit record 3 was changed"),
        "{}",
        broken.stdout
    );
    let db = rusqlite::Connection::open(server.state.join("ward.db")).unwrap();
    db.execute("DELETE FROM audit WHERE seq = 3", []).unwrap();
    drop(db);
    let gap = run_ward(&["audit", "verify", "--state", &state]);
    assert!(
        gap.stdout
            .contains("audit record 4 does not follow record 2"),
        "{}",
        gap.stdout
    );
}

#[test]
fn killed_mid_queue_and_restarted_every_job_completes() {
    let mut server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "quick", "noop", "");
    server.pipeline(RAD_OP, "slow", "sleep", "");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let digest = ward::volumes::tree_digest(&server.state.join("payloads").join(&payload)).unwrap();
    let ids: Vec<String> = (0..200)
        .map(|i| {
            server.job(
                RAD_OP,
                if i % 10 == 0 { "slow" } else { "quick" },
                &payload,
                "normal",
                true,
            )
        })
        .collect();
    // Kill while jobs run.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = server.ok("GET", "/v1/jobs?state=running", RAD_OP, None);
        if !running["items"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    server.launch();
    for id in &ids {
        let job = server.wait(RAD_OP, id);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let all = server.ok("GET", "/v1/jobs?page_size=1000", RAD_OP, None);
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        200,
        "none lost, none doubled"
    );
    assert_eq!(
        ward::volumes::tree_digest(&server.state.join("payloads").join(&payload)).unwrap(),
        digest,
        "the payload is as uploaded"
    );
    let requeued = server
        .audit(RAD_ADMIN)
        .iter()
        .filter(|r| r["action"] == "job.requeued")
        .count();
    assert!(requeued >= 1, "the jobs running at the kill ran again");
}

#[test]
fn the_openapi_document_describes_every_route() {
    let server = Server::start(1, "1Gi", 1);
    let (code, doc) = server.call("GET", "/openapi.json", None, None);
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let source =
        std::fs::read_to_string(repo_root().join("runtime/src/service/api/mod.rs")).unwrap();
    let routes: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|s| s.trim_start().strip_prefix('"')?.split('"').next())
        .collect();
    assert!(routes.len() >= 15, "{routes:?}");
    for route in routes {
        assert!(
            paths.contains_key(route),
            "{route} is not in the OpenAPI document"
        );
    }
}

#[test]
fn failed_jobs_retry_within_their_limit_and_running_jobs_can_be_cancelled() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "flaky", "stage-error", "");
    server.pipeline(RAD_OP, "wrong-input", "invalid-input", "");
    server.pipeline(RAD_OP, "endless", "spin", "timeout: 10m");
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let create = |pipeline: &str, attempts: u32| {
        server.ok(
            "POST",
            "/v1/jobs",
            RAD_OP,
            Some(json!({"pipeline": pipeline, "payload": payload, "start": true, "max_attempts": attempts})),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let flaky = server.wait(RAD_OP, &create("flaky", 3));
    assert_eq!(
        (flaky["state"].as_str(), flaky["attempts"].as_i64()),
        (Some("failed"), Some(3)),
        "{flaky}"
    );
    let wrong = server.wait(RAD_OP, &create("wrong-input", 3));
    assert_eq!(
        wrong["attempts"], 1,
        "invalid input is not retried: {wrong}"
    );
    // A failed job runs again from its payload when started.
    server.ok(
        "POST",
        &format!("/v1/jobs/{}/start", wrong["id"].as_str().unwrap()),
        RAD_OP,
        None,
    );
    let again = server.wait(RAD_OP, wrong["id"].as_str().unwrap());
    assert_eq!(again["attempts"], 2, "{again}");

    let endless = create("endless", 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.ok("GET", &format!("/v1/jobs/{endless}"), RAD_OP, None)["state"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    server.ok("POST", &format!("/v1/jobs/{endless}/cancel"), RAD_OP, None);
    let cancelled = server.wait(RAD_OP, &endless);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopped at once, not at its deadline"
    );
    let (code, body) = server.call(
        "POST",
        &format!("/v1/jobs/{endless}/cancel"),
        Some(RAD_OP),
        None,
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("bad-state"))
    );
}

/// DICOMweb STOW-RS: the instances become a payload and the tenant's STOW pipeline runs.
#[test]
fn stow_rs_stores_instances_and_runs_the_tenants_pipeline() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let dir = tempdir();
    let series = ward::sample::ct_series::write_ct_series(
        dir.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 4,
            size: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let boundary = "ward-test-boundary-7d1c";
    let mut body = Vec::new();
    for file in &series.files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&std::fs::read(file).unwrap());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--{boundary}--\r\n").as_bytes());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let (code, headers, answer) =
        server.send_with_headers("POST", "/v1/dicomweb/studies", RAD_OP, &content_type, &body);
    assert_eq!(code, 202, "one part refused: {answer}");
    assert_eq!(
        answer["00081199"]["Value"].as_array().unwrap().len(),
        4,
        "{answer}"
    );
    assert_eq!(
        answer["00081198"]["Value"][0]["00081197"]["Value"][0],
        0xC000
    );
    // Every element of the answer is DICOM JSON: a tag and its `vr`, nothing of Ward's own
    // beside them but its private block.
    for (key, element) in answer.as_object().unwrap() {
        assert!(
            key.len() == 8 && key.chars().all(|c| c.is_ascii_hexdigit()),
            "{key} is not a tag: {answer}"
        );
        assert!(element["vr"].is_string(), "{key} has no vr: {answer}");
    }
    assert_eq!(answer["00090010"]["Value"][0], "WARD 1.0", "{answer}");
    let payload = answer["00091001"]["Value"][0].as_str().unwrap();
    assert_eq!(
        headers.get("ward-payload").map(String::as_str),
        Some(payload)
    );
    let stored: Vec<_> = std::fs::read_dir(server.state.join("payloads").join(payload))
        .unwrap()
        .collect();
    assert_eq!(stored.len(), 4);
    let job = answer["00091002"]["Value"][0].as_str().unwrap();
    assert_eq!(headers.get("ward-jobs").map(String::as_str), Some(job));
    let job = server.wait(RAD_OP, job);
    assert_eq!(
        (job["state"].as_str(), job["priority"].as_str()),
        (Some("succeeded"), Some("higher")),
        "{job}"
    );
    let (code, body) = server.send_raw(
        "POST",
        "/v1/dicomweb/studies",
        RAD_OP,
        "application/json",
        b"{}",
    );
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (415, Some("bad-media-type"))
    );
}

/// With `tls:` the API is HTTPS with the configured certificate, and only HTTPS.
#[test]
fn the_api_is_served_over_tls_with_the_configured_certificate() {
    let dir = tempdir();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // A server certificate, not a CA's: rustls refuses a CA used as an end entity.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let server = Server::start_in(
        dir,
        1,
        "1Gi",
        1,
        "tls: {certificate: cert.pem, key: key.pem}",
        "https",
    );
    let curl = |extra: &[&str], url: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(extra)
            .arg(url)
            .output()
            .expect("curl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, body) = curl(
        &["--cacert", cert.to_str().unwrap()],
        &format!("{}/healthz", server.url),
    );
    assert!(ok && body.contains("\"ok\""), "{body}");
    let (ok, body) = curl(
        &[
            "--cacert",
            cert.to_str().unwrap(),
            "-H",
            &format!("Authorization: Bearer {RAD_VIEW}"),
        ],
        &format!("{}/v1/jobs", server.url),
    );
    assert!(ok && body.contains("items"), "{body}");
    // Ward's own client, trusting the test certificate, and refusing without it.
    let client = |cacert: Option<&Path>| {
        let mut cmd = ward();
        cmd.args(["payload", "list", "--url", &server.url])
            .env("WARD_TOKEN", RAD_VIEW);
        if let Some(cacert) = cacert {
            cmd.arg("--cacert").arg(cacert);
        }
        cmd.output().unwrap()
    };
    let listed = client(Some(&cert));
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let untrusted = client(None);
    let said = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        !untrusted.status.success() && said.to_lowercase().contains("certificate"),
        "{said}"
    );
    let (plain, _) = curl(
        &[],
        &format!("{}/healthz", server.url.replacen("https", "http", 1)),
    );
    assert!(!plain, "plain HTTP is not answered");
}

/// A named dataset mounts read-only into the stages that ask for it, and a job on several
/// payloads sees one directory per payload.
#[test]
fn datasets_and_several_payloads_reach_the_stages() {
    let server = Server::start(2, "4Gi", 2);
    let atlas = tempdir();
    for i in 0..3 {
        std::fs::write(atlas.path().join(format!("label-{i}.txt")), b"atlas").unwrap();
    }
    let tar = ward::service::archive::pack(atlas.path()).unwrap();
    let (code, v) = server.send_raw(
        "POST",
        "/v1/datasets/atlas",
        RAD_OP,
        "application/x-tar",
        &tar,
    );
    assert_eq!(code, 201, "{v}");
    let (code, v) = server.send_raw(
        "POST",
        "/v1/datasets/atlas",
        RAD_OP,
        "application/x-tar",
        &tar,
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("exists")),
        "immutable"
    );
    assert_eq!(
        server.ok("GET", "/v1/datasets", RAD_OP, None)["items"][0]["files"],
        3
    );
    assert!(server.ok("GET", "/v1/datasets", CARD_OP, None)["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let yaml = "api-version: 0.1
name: with-atlas
operators:
  - name: stage
    component: {path: misbehave.wasm}
    parameters: {behaviour: ok}
    input: [{path: /payload}, {dataset: atlas, path: /atlas}]
";
    let (code, v) = server.send_raw(
        "POST",
        "/v1/pipelines",
        RAD_OP,
        "application/yaml",
        yaml.as_bytes(),
    );
    assert_eq!(code, 201, "{v}");
    let (one, two) = (small_payload(), small_payload());
    let ids = [
        server.payload(RAD_OP, one.path()),
        server.payload(RAD_OP, two.path()),
    ];
    let job = server.ok(
        "POST",
        "/v1/jobs",
        RAD_OP,
        Some(json!({"pipeline": "with-atlas", "payloads": ids, "start": true})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = server.wait(RAD_OP, &job);
    assert_eq!(done["state"], "succeeded", "{done}");
    let tar = server.bytes(&format!("/v1/jobs/{job}/results?stage=stage"), RAD_OP);
    let out = tempdir();
    ward::service::archive::unpack(&tar[..], out.path(), u64::MAX).unwrap();
    let inventory = read_json(&out.path().join("results/inventory.json"));
    let volume = |kind: &str| {
        inventory["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["kind"] == kind)
            .cloned()
            .unwrap()
    };
    assert_eq!(volume("dataset")["files"], 3, "{inventory}");
    assert_eq!(volume("dataset")["read_only"], true);
    assert_eq!(
        volume("payload")["files"],
        4,
        "two payloads of two files: {inventory}"
    );
    // Cardio has no dataset of that name: its job on the same pipeline fails, naming it.
    let (code, _) = server.send_raw(
        "POST",
        "/v1/pipelines",
        CARD_OP,
        "application/yaml",
        yaml.as_bytes(),
    );
    assert_eq!(code, 201);
    let card = server.payload(CARD_OP, one.path());
    let failed = server.job(CARD_OP, "with-atlas", &card, "normal", true);
    let failed = server.wait(CARD_OP, &failed);
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["failure"].as_str().unwrap().contains("atlas"),
        "{failed}"
    );
}

/// `ward serve` hosting the DICOM adapter: a series sent to a tenant's AE title becomes that
/// tenant's payload and job, and the SEG goes to the PACS.
#[test]
fn the_service_receives_dicom_for_the_tenant_owning_the_ae_title() {
    use crate::dicom_scp::storescp;
    let dir = tempdir();
    let pacs_dir = dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let (_pacs, pacs_port) = storescp(&pacs_dir, "PACS");
    let dicom_port = free_port();
    std::fs::write(
        dir.path().join("adapter.yaml"),
        format!(
            "listen: 127.0.0.1:{dicom_port}
storage: dicom
routes:
  - ae-title: RAD_SEG
    tenant: radiology
    pipelines: [ct-segmentation]
    export: [{{output: dicom-writer.seg, destination: pacs}}]
destinations:
  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: {pacs_port}}}
"
        ),
    )
    .unwrap();
    let server = Server::start_in(dir, 2, "8Gi", 2, "dicom: adapter.yaml", "http");
    wait_for_port(dicom_port);
    let example =
        std::fs::read_to_string(repo_root().join("examples/ct-segmentation/pipeline.yaml"))
            .unwrap()
            .replace("../../guests/target/wasm32-wasip2/release/", "");
    let (code, v) = server.send_raw(
        "POST",
        "/v1/pipelines",
        RAD_OP,
        "application/yaml",
        example.as_bytes(),
    );
    assert_eq!(code, 201, "{v}");
    let series = tempdir();
    ward::sample::ct_series::write_ct_series(
        series.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 16,
            size: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let out = std::process::Command::new(dcmtk_tool("storescu"))
        .args([
            "-aec",
            "RAD_SEG",
            "+sd",
            "127.0.0.1",
            &dicom_port.to_string(),
        ])
        .arg(series.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let jobs = server.ok("GET", "/v1/jobs", RAD_OP, None);
        if let Some(j) = jobs["items"].as_array().unwrap().first() {
            break j["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no job for the received series");
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = server.wait(RAD_OP, &job);
    assert_eq!(done["state"], "succeeded", "{done}");
    let payload = done["payload_id"].as_str().unwrap();
    assert_eq!(
        server.ok("GET", &format!("/v1/payloads/{payload}"), RAD_OP, None)["files"],
        16
    );
    assert_eq!(
        server
            .call("GET", &format!("/v1/jobs/{job}"), Some(CARD_OP), None)
            .0,
        404
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&pacs_dir).unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the SEG did not reach the PACS");
        std::thread::sleep(Duration::from_millis(100));
    }
    let received = std::fs::read_dir(&pacs_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(dcmdump(&[received.to_str().unwrap()])
        .stdout
        .contains("SegmentationStorage"));
}
