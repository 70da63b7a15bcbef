//! The job service's log: each job's queued, started and finished events (outcome,
//! duration) appear on the real service's stderr at its default level, driven by the `ward`
//! client commands.

use crate::dicom_scp::{free_port, wait_for_port, Killed};
use crate::service::hash;
use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "events-operator-token";

/// The service's log lines (`--log-format json`) so far.
fn events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the event `message` of job `job` on the log, and returns it.
fn wait_for(log: &Path, message: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Some(e) = events(log)
            .into_iter()
            .find(|e| e["fields"]["message"] == message && e["fields"]["job"] == job)
        {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no '{message}' for job {job} in the log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a `ward` client command against the service at `url`; returns its stdout.
fn client(url: &str, args: &[&str]) -> String {
    let out = ward()
        .args(args)
        .env("WARD_URL", url)
        .env("WARD_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ward {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_service_logs_each_jobs_queueing_start_and_end_with_outcome_and_duration() {
    let dir = tempdir();
    let port = free_port();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
state: state
components: {}
tenants:
  - name: radiology
    tokens: [{{name: ci, role: operator, sha256: {}}}]
",
            components_dir().display(),
            hash(TOKEN)
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let child = ward()
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env_remove("WARD_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _service = Killed(child);
    wait_for_port(port);
    let url = format!("http://127.0.0.1:{port}");
    for (name, behaviour) in [("works", "sleep"), ("breaks", "stage-error")] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: {behaviour}, sleep-ms: '300'}}
    input: [{{path: /payload}}]
"
            ),
        )
        .unwrap();
        client(&url, &["pipeline", "create", file.to_str().unwrap()]);
    }
    let payload_dir = small_payload();
    let payload = client(
        &url,
        &[
            "payload",
            "upload",
            "-q",
            payload_dir.path().to_str().unwrap(),
        ],
    );
    assert!(
        !payload.contains(char::is_whitespace),
        "an id alone: {payload}"
    );

    let works = client(
        &url,
        &[
            "job",
            "create",
            "--pipeline",
            "works",
            "--payload",
            &payload,
            "-q",
        ],
    );
    client(&url, &["job", "start", &works]);
    let queued = wait_for(&log, "job queued", &works);
    assert_eq!(queued["level"], "INFO", "{queued}");
    assert_eq!(queued["fields"]["tenant"], "radiology", "{queued}");
    assert_eq!(queued["fields"]["by"], "ci", "the token's name: {queued}");
    let started = wait_for(&log, "job started", &works);
    assert_eq!(started["fields"]["attempt"], 1, "{started}");
    let finished = wait_for(&log, "job finished", &works);
    assert_eq!(finished["fields"]["outcome"], "succeeded", "{finished}");
    let took = finished["fields"]["duration_s"].as_f64().unwrap();
    // The stage sleeps 300 ms before it answers.
    assert!(
        (0.3..120.0).contains(&took),
        "duration {took} s: {finished}"
    );

    let breaks = client(
        &url,
        &[
            "job",
            "create",
            "--pipeline",
            "breaks",
            "--payload",
            &payload,
            "--start",
            "-q",
        ],
    );
    wait_for(&log, "job queued", &breaks);
    wait_for(&log, "job started", &breaks);
    let finished = wait_for(&log, "job finished", &breaks);
    assert_eq!(finished["fields"]["outcome"], "failed", "{finished}");
    let reason = finished["fields"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("deliberate failure"),
        "the stage's own reason: {finished}"
    );
    // The order on the log is the order they happened in.
    let order: Vec<String> = events(&log)
        .iter()
        .filter(|e| e["fields"]["job"] == works.as_str())
        .filter_map(|e| e["fields"]["message"].as_str().map(str::to_owned))
        .filter(|m| m.starts_with("job "))
        .collect();
    assert_eq!(
        order,
        ["job queued", "job started", "job finished"],
        "{order:?}"
    );
}
