//! Retention through a real `ward serve`: a tenant's ended jobs and unused payloads go once
//! their retention has passed, record and files, audited; what a pending job needs stays,
//! and other tenants keep everything.

use crate::service::{hash, Server, RAD_OP};
use crate::support::*;
use std::time::{Duration, Instant};

const RESEARCH: &str = "research-admin-token";

/// Waits (generously) until `GET path` answers `code`.
fn wait_for_status(server: &Server, path: &str, token: &str, code: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (got, body) = server.call("GET", path, Some(token), None);
        if got == code {
            return;
        }
        assert!(Instant::now() < deadline, "GET {path}: {got} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ended_jobs_and_unused_payloads_go_after_their_retention_and_nothing_else_does() {
    let tenants = format!(
        "  - name: research
    max-priority: normal
    tokens:
      - {{name: admin, role: admin, sha256: {}}}
    retention: {{jobs: 1s, payloads: 5s}}
",
        hash(RESEARCH)
    );
    let server = Server::start_with(tempdir(), 2, "4Gi", 2, "", &tenants, "http");
    for token in [RESEARCH, RAD_OP] {
        server.pipeline(token, "quick", "ok", "");
    }
    let dir = small_payload();
    // Each job is created as soon as its payload is there, well within the payloads'
    // retention; from then on the job keeps the payload, whatever the machine's speed.
    let used = server.payload(RESEARCH, dir.path());
    let done = server.job(RESEARCH, "quick", &used, "normal", true);
    // Created but not started: it needs its payload whatever its age.
    let pending_payload = server.payload(RESEARCH, dir.path());
    let pending = server.job(RESEARCH, "quick", &pending_payload, "normal", false);
    let kept = server.payload(RAD_OP, dir.path());
    let other = server.job(RAD_OP, "quick", &kept, "normal", true);

    // The job's record goes 1 s after it ended (not checked before: on a busy machine the
    // reclaimer may be quicker than this test), its files with it.
    let job_dir = server.state.join("jobs").join(&done);
    assert_eq!(server.wait(RAD_OP, &other)["state"], "succeeded");

    wait_for_status(&server, &format!("/v1/jobs/{done}"), RESEARCH, 404);
    assert!(!job_dir.exists(), "the job's files went with its record");
    // Its payload is unused now, and goes after its own retention.
    wait_for_status(&server, &format!("/v1/payloads/{used}"), RESEARCH, 404);
    assert!(!server.state.join("payloads").join(&used).exists());

    // What a pending job needs stays; another tenant (no retention) keeps everything. (An
    // absence has no signal to wait for: past both retentions, a wrong removal would show.)
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        server
            .call("GET", &format!("/v1/jobs/{pending}"), Some(RESEARCH), None)
            .0,
        200
    );
    assert_eq!(
        server
            .call(
                "GET",
                &format!("/v1/payloads/{pending_payload}"),
                Some(RESEARCH),
                None
            )
            .0,
        200
    );
    assert!(server
        .state
        .join("payloads")
        .join(&pending_payload)
        .is_dir());
    assert_eq!(
        server
            .call("GET", &format!("/v1/jobs/{other}"), Some(RAD_OP), None)
            .0,
        200
    );
    assert_eq!(
        server
            .call("GET", &format!("/v1/payloads/{kept}"), Some(RAD_OP), None)
            .0,
        200
    );

    let audit = server.audit(RESEARCH);
    let expired: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or("").ends_with(".expired"))
        .map(|e| (e["action"].as_str().unwrap(), e["object"].as_str().unwrap()))
        .collect();
    assert_eq!(
        expired,
        vec![
            ("job.expired", done.as_str()),
            ("payload.expired", used.as_str())
        ]
    );
}
