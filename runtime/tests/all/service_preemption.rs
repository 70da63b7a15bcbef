//! Pre-emption for priority, through the API of a real `ward serve`: an `immediate` job that
//! does not fit ends a running `lower` one, which is queued again and re-run from its
//! untouched payload to the same results; a pipeline marked `preemptible: false` is never
//! ended.

use crate::service::{Server, METRICS, RAD_ADMIN, RAD_OP};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A pipeline of one misbehave stage logging `tick N` every 250 ms, `ticks` times, then
/// writing its inventory (the same bytes for the same job inputs).
fn post_ticking(server: &Server, name: &str, ticks: u32, preemptible: bool) {
    let flag = if preemptible {
        ""
    } else {
        "preemptible: false\n"
    };
    let yaml = format!(
        "api-version: 0.1
name: {name}
{flag}operators:
  - name: stage
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: tick, ticks: '{ticks}', sleep-ms: '250'}}
    input: [{{path: /payload}}]
    requests: {{timeout: 10m}}
"
    );
    let (code, v) = server.send_raw(
        "POST",
        "/v1/pipelines",
        RAD_OP,
        "application/yaml",
        yaml.as_bytes(),
    );
    assert_eq!(code, 201, "{v}");
}

fn get(server: &Server, id: &str) -> Value {
    server.ok("GET", &format!("/v1/jobs/{id}"), RAD_OP, None)
}

/// Waits (generously) until `ready` holds of job `id`.
fn wait_until(server: &Server, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = get(server, id);
        if ready(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id}: {what}: {job}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file of an attempt's results, by path.
fn results(server: &Server, id: &str, attempt: i64) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let name = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let dir = server
        .state
        .join("jobs")
        .join(id)
        .join(format!("attempt-{attempt}/results"));
    let mut out = BTreeMap::new();
    walk(&dir, &dir, &mut out);
    out
}

#[test]
fn an_immediate_job_preempts_a_lower_one_which_reruns_to_the_same_results() {
    // One job slot: the immediate job fits only if the lower one makes room.
    let server = Server::start(1, "4Gi", 2);
    post_ticking(&server, "long", 40, true);
    post_ticking(&server, "urgent", 1, true);
    let payload_dir = crate::support::small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());

    // The results of an undisturbed run, to compare the pre-empted job's with.
    let undisturbed = server.job(RAD_OP, "long", &payload, "lower", true);
    assert_eq!(server.wait(RAD_OP, &undisturbed)["state"], "succeeded");
    let reference = results(&server, &undisturbed, 1);
    assert!(!reference.is_empty());

    let victim = server.job(RAD_OP, "long", &payload, "lower", true);
    wait_until(&server, &victim, "running", |j| j["state"] == "running");
    let asked = Instant::now();
    let urgent = server.job(RAD_OP, "urgent", &payload, "immediate", true);
    wait_until(&server, &victim, "pre-empted", |j| {
        if j["state"] == "succeeded" {
            panic!(
                "ran to its end: {j}\n{}",
                std::fs::read_to_string(server.config.with_file_name("serve.log"))
                    .unwrap_or_default()
            );
        }
        j["preemptions"] == 1
    });
    let took = asked.elapsed();
    eprintln!(
        "pre-empted {:.0} ms after the immediate job arrived",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_secs(30), "{took:?}");

    let urgent = server.wait(RAD_OP, &urgent);
    assert_eq!(urgent["state"], "succeeded", "{urgent}");
    let victim_job = server.wait(RAD_OP, &victim);
    assert_eq!(victim_job["state"], "succeeded", "{victim_job}");
    assert_eq!(victim_job["attempts"], 2, "{victim_job}");
    assert_eq!(victim_job["preemptions"], 1);
    assert_eq!(
        victim_job["max_attempts"], 2,
        "the pre-empted attempt is not counted against max_attempts"
    );
    assert!(
        urgent["started"].as_f64() < victim_job["started"].as_f64(),
        "the immediate job ran before the re-run"
    );

    // The first attempt's stage ended as pre-empted, not failed nor cancelled.
    let summary: Value = serde_json::from_slice(
        &std::fs::read(
            server
                .state
                .join("jobs")
                .join(&victim)
                .join("attempt-1/summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let text = summary.to_string();
    assert!(text.contains("\"preempted\""), "{summary:#}");
    // The re-run's results are byte-identical to the undisturbed run's.
    assert_eq!(results(&server, &victim, 2), reference);

    let audit = server.audit(RAD_ADMIN);
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| e["object"] == victim.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"job.preempted"), "{actions:?}");
    assert!(actions.contains(&"job.requeued"), "{actions:?}");
    let metrics = String::from_utf8(server.bytes("/metrics", METRICS)).unwrap();
    assert!(
        metrics.lines().any(|l| l == "ward_jobs_preempted_total 1"),
        "{metrics}"
    );
}

#[test]
fn a_job_marked_not_preemptible_is_left_to_finish() {
    let server = Server::start(1, "4Gi", 2);
    post_ticking(&server, "pinned", 12, false);
    post_ticking(&server, "urgent", 1, true);
    let payload_dir = crate::support::small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let pinned = server.job(RAD_OP, "pinned", &payload, "lower", true);
    wait_until(&server, &pinned, "running", |j| j["state"] == "running");
    let urgent = server.job(RAD_OP, "urgent", &payload, "immediate", true);
    let urgent = server.wait(RAD_OP, &urgent);
    let pinned = server.wait(RAD_OP, &pinned);
    assert_eq!(
        (pinned["state"].as_str(), pinned["attempts"].as_i64()),
        (Some("succeeded"), Some(1)),
        "{pinned}"
    );
    assert_eq!(pinned["preemptions"], 0);
    assert!(
        urgent["started"].as_f64() >= pinned["finished"].as_f64(),
        "the immediate job waited: {urgent} {pinned}"
    );
}
