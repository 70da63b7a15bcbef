//! `ward serve` against callers that ask for more than they are given: priorities above a
//! tenant's, floods of bad tokens, `/metrics` without a token, connections that never finish
//! their request, and an audit trail rewritten or cut short behind the service's back.

use crate::service::{hash, Server, CARD_OP, METRICS, RAD_ADMIN, RAD_OP};
use crate::support::*;
use serde_json::{json, Value};
use sha2::Digest;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `ward serve --config config`, which must refuse to start; returns what it said.
fn serve_refuses(config: &Path) -> String {
    let mut child = ward()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut said = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut said)
                .unwrap();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut said)
                .unwrap();
            assert!(!status.success(), "ward serve exited 0: {said}");
            return said;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ward serve started, but it should have refused to");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metrics(server: &Server, token: &str) -> String {
    String::from_utf8(server.bytes("/metrics", token)).unwrap()
}

/// The value of an unlabelled series in a Prometheus text exposition.
fn figure(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn immediate_is_refused_to_a_tenant_without_it_and_given_to_one_with_it() {
    let server = Server::start(2, "4Gi", 2);
    let dir = small_payload();
    server.pipeline(CARD_OP, "quick", "noop", "");
    server.pipeline(RAD_OP, "quick", "noop", "");
    let card = server.payload(CARD_OP, dir.path());
    let rad = server.payload(RAD_OP, dir.path());
    let ask = |token: &str, payload: &str, priority: &str| {
        server.call(
            "POST",
            "/v1/jobs",
            Some(token),
            Some(json!({"pipeline": "quick", "payload": payload, "priority": priority, "start": true})),
        )
    };
    let (code, refused) = ask(CARD_OP, &card, "immediate");
    assert_eq!(code, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "priority-not-allowed");
    let message = refused["error"]["message"].as_str().unwrap();
    for word in ["'cardio'", "'immediate'", "'higher'"] {
        assert!(message.contains(word), "{message} names {word}");
    }
    assert!(
        server.ok("GET", "/v1/jobs", CARD_OP, None)["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the refused job was not recorded"
    );
    let (code, higher) = ask(CARD_OP, &card, "higher");
    assert_eq!(code, 201, "{higher}");
    let (code, immediate) = ask(RAD_OP, &rad, "immediate");
    assert_eq!(code, 201, "{immediate}");
    assert_eq!(immediate["priority"], "immediate");
    for (token, job) in [(CARD_OP, &higher), (RAD_OP, &immediate)] {
        let done = server.wait(token, job["id"].as_str().unwrap());
        assert_eq!(done["state"], "succeeded", "{done}");
    }
}

#[test]
fn a_stow_priority_above_the_tenants_maximum_is_refused_at_load() {
    let dir = tempdir();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0
state: state
components: .
tenants:
  - name: clinic
    tokens: [{{name: op, role: operator, sha256: {}}}]
    stow: {{pipelines: [inventory], priority: immediate}}
",
            hash("clinic-token")
        ),
    )
    .unwrap();
    let said = serve_refuses(&config);
    for part in [
        config.to_str().unwrap(),
        "tenant 'clinic'",
        "stow priority 'immediate'",
        "max-priority 'higher'",
    ] {
        assert!(said.contains(part), "{said} names {part}");
    }
}

#[test]
fn a_flood_of_bad_tokens_is_counted_but_adds_few_audit_rows() {
    let server = Server::start(2, "4Gi", 2);
    const FLOOD: u64 = 3000;
    let agent = ureq::agent();
    for i in 0..FLOOD {
        let r = agent
            .get(&format!("{}/v1/jobs", server.url))
            .set("Authorization", &format!("Bearer forged-{i}"))
            .call();
        match r {
            // Read to the end, so the connection is used again.
            Err(ureq::Error::Status(401, r)) => drop(r.into_string()),
            other => panic!("{other:?}"),
        }
    }
    let (code, _) = server.call("POST", "/v1/jobs", Some("not-a-token"), None);
    assert_eq!(code, 401);
    let text = metrics(&server, METRICS);
    assert_eq!(
        figure(&text, "ward_api_unauthorized_total"),
        FLOOD + 1,
        "{text}"
    );
    let db = rusqlite::Connection::open(server.state.join("ward.db")).unwrap();
    let refused: Vec<(String, String)> = db
        .prepare("SELECT object, detail FROM audit WHERE action = 'auth.refused'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let all: i64 = db
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert!(
        (1..=4).contains(&refused.len()) && all < 10,
        "{all} audit rows after {FLOOD} refusals: {refused:?}"
    );
    assert_eq!(refused[0].0, "127.0.0.1", "the source is named");
    assert!(refused[0].1.starts_with("1 refused (401)"), "{refused:?}");
    // A refused token of a tenant counts as forbidden, and the tenant's own calls still
    // reach the trail one by one.
    server.pipeline(RAD_OP, "inventory", "ok", "");
    assert_eq!(server.call("GET", "/v1/audit", Some(RAD_OP), None).0, 403);
    let text = metrics(&server, METRICS);
    assert_eq!(figure(&text, "ward_api_forbidden_total"), 1, "{text}");
    let records = server.audit(RAD_ADMIN);
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "api" && r["object"] == "POST /v1/pipelines"),
        "{records:?}"
    );
}

#[test]
fn metrics_need_a_token_and_a_tenant_sees_only_its_own_figures() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(CARD_OP, "quick", "noop", "");
    let dir = small_payload();
    let card = server.payload(CARD_OP, dir.path());
    let job = server.job(CARD_OP, "quick", &card, "normal", true);
    server.wait(CARD_OP, &job);
    let (code, body) = server.call("GET", "/metrics", None, None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(server.call("GET", "/metrics", Some(RAD_OP), None).0, 403);
    let own = metrics(&server, RAD_ADMIN);
    assert!(
        own.contains("ward_tenant_jobs{tenant=\"radiology\",state=\"succeeded\"} 0"),
        "{own}"
    );
    assert!(
        !own.contains("cardio") && !own.contains("ward_jobs{") && !own.contains("ward_queue_depth"),
        "a tenant's admin sees nothing of other tenants or the node: {own}"
    );
    let node = metrics(&server, METRICS);
    for series in [
        "ward_jobs{state=\"succeeded\"} 1",
        "ward_tenant_jobs{tenant=\"cardio\",state=\"succeeded\"} 1",
        "ward_tenant_jobs{tenant=\"radiology\",state=\"succeeded\"} 0",
    ] {
        assert!(node.contains(series), "{series} in {node}");
    }
}

/// Reads `stream` until the server closes it (end of file or reset), by `deadline`.
fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // an error response before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn connections_that_never_finish_their_request_are_closed() {
    let server = Server::start_in(
        tempdir(),
        2,
        "4Gi",
        2,
        "http: {header-timeout: 2s, idle-timeout: 3s, max-connections: 256}",
        "http",
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let mut held: Vec<(&str, TcpStream)> = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(&address).unwrap();
        let what = match i % 3 {
            // Half a header, then nothing.
            0 => {
                s.write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: ward\r\nX-Slow: ")
                    .unwrap();
                "half a header"
            }
            // Nothing at all.
            1 => "nothing",
            // A whole header and part of the body it announces.
            _ => {
                s.write_all(
                    format!(
                        "POST /v1/payloads HTTP/1.1\r\nHost: ward\r\nAuthorization: Bearer {RAD_OP}\r\nContent-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n"
                    )
                    .as_bytes(),
                )
                .unwrap();
                s.write_all(&[0u8; 512]).unwrap();
                "part of a body"
            }
        };
        held.push((what, s));
    }
    // Meanwhile the service answers.
    let (code, health) = server.call("GET", "/healthz", None, None);
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, (what, stream)) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(stream, deadline),
            "connection {i} ({what}) is still open"
        );
    }
    let (code, _) = server.call("GET", "/healthz", None, None);
    assert_eq!(code, 200);
}

/// The unkeyed SHA-256 of an audit record, as the chain was computed before it was keyed:
/// what anyone can recompute from the database alone.
fn unkeyed_hash(prev: &str, seq: i64, time: f64, rest: [&str; 5]) -> String {
    let mut h = sha2::Sha256::new();
    let seq = seq.to_string();
    let time = format!("{time:.6}");
    for field in [prev, seq.as_str(), time.as_str()].into_iter().chain(rest) {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Rewrites every audit record of the database in `state` with a chain recomputed without
/// the key, changing `detail` of record `changed` on the way; returns the last record's
/// number and hash.
fn rewrite_unkeyed(state: &Path, changed: i64) -> (i64, String) {
    let db = rusqlite::Connection::open(state.join("ward.db")).unwrap();
    type Row = (i64, f64, String, String, String, String, String);
    let rows: Vec<Row> = db
        .prepare(
            "SELECT seq, time, tenant, principal, action, object, detail FROM audit ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev = "0".repeat(64);
    let mut last = (0, prev.clone());
    for (seq, time, tenant, principal, action, object, detail) in rows {
        let detail = if seq == changed {
            "nothing happened".to_string()
        } else {
            detail
        };
        let hash = unkeyed_hash(
            &prev,
            seq,
            time,
            [&tenant, &principal, &action, &object, &detail],
        );
        db.execute(
            "UPDATE audit SET detail = ?1, prev = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![detail, prev, hash, seq],
        )
        .unwrap();
        last = (seq, hash.clone());
        prev = hash;
    }
    last
}

/// A server that did some work and was killed; its state directory.
fn worked_server() -> Server {
    let mut server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let dir = small_payload();
    let payload = server.payload(RAD_OP, dir.path());
    let job = server.job(RAD_OP, "inventory", &payload, "normal", true);
    server.wait(RAD_OP, &job);
    server.kill();
    server
}

fn verify(state: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["audit", "verify", "--state", state.to_str().unwrap()];
    args.extend(extra);
    run_ward(&args)
}

#[test]
fn an_audit_chain_rewritten_without_the_key_is_found() {
    let server = worked_server();
    let ok = verify(&server.state, &[]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.contains("audit trail intact"), "{}", ok.stdout);
    assert!(ok.stdout.contains("keyed, head"), "{}", ok.stdout);
    // The whole chain recomputed from the database alone, with record 3 changed, and the
    // head file rewritten to name its new end.
    let (seq, hash) = rewrite_unkeyed(&server.state, 3);
    let head = server.state.join("audit.head");
    let old = std::fs::read_to_string(&head).unwrap();
    let rest = old.split_once(' ').unwrap().1;
    std::fs::write(&head, format!("{seq}:{hash} {rest}")).unwrap();
    let forged_head = verify(&server.state, &[]);
    assert_eq!(
        forged_head.code, 1,
        "{}{}",
        forged_head.stdout, forged_head.stderr
    );
    assert!(
        forged_head.stdout.contains("does not match the audit key"),
        "{}",
        forged_head.stdout
    );
    // With the head as the service left it, the first rewritten record is named.
    std::fs::write(&head, old).unwrap();
    let broken = verify(&server.state, &[]);
    assert_eq!(broken.code, 1, "{}{}", broken.stdout, broken.stderr);
    assert!(
        broken
            .stdout
            .contains("audit record 1 is not keyed with the audit key"),
        "{}",
        broken.stdout
    );
}

#[test]
fn an_audit_trail_cut_short_is_found_against_its_head() {
    let mut server = worked_server();
    let head = run_ward(&["audit", "head", "--state", server.state.to_str().unwrap()]);
    assert_eq!(head.code, 0, "{}{}", head.stdout, head.stderr);
    let anchor = head.stdout.trim().to_string();
    let (seq, _) = anchor.split_once(':').unwrap();
    let seq: i64 = seq.parse().unwrap();
    assert!(seq > 5, "{anchor}");
    let ok = verify(&server.state, &["--head", &anchor]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    let db = rusqlite::Connection::open(server.state.join("ward.db")).unwrap();
    db.execute("DELETE FROM audit WHERE seq > ?1", [seq - 3])
        .unwrap();
    drop(db);
    let cut = verify(&server.state, &[]);
    assert_eq!(cut.code, 1, "{}{}", cut.stdout, cut.stderr);
    let expected = format!(
        "the audit trail ends at record {} but its head is record {seq}: records {}-{seq} were removed",
        seq - 3,
        seq - 2
    );
    assert!(cut.stdout.contains(&expected), "{}", cut.stdout);
    // A service does not append to the cut chain as if nothing happened.
    let said = serve_refuses(&server.config);
    assert!(
        said.contains("audit.head") && said.contains("were removed"),
        "{said}"
    );
    // With the head file gone too, the service anchors the chain anew, but the head kept
    // elsewhere still finds the cut.
    std::fs::remove_file(server.state.join("audit.head")).unwrap();
    server.launch();
    server.kill();
    let anchored = verify(&server.state, &["--head", &anchor]);
    assert_eq!(anchored.code, 1, "{}{}", anchored.stdout, anchored.stderr);
    assert!(
        anchored
            .stdout
            .contains(&format!("but its head is record {seq}")),
        "{}",
        anchored.stdout
    );
}

#[test]
fn an_unkeyed_trail_from_before_keying_verifies_and_is_anchored_on_start() {
    let mut server = worked_server();
    // What a database from before the chain was keyed looks like: plain SHA-256, no key,
    // no head.
    rewrite_unkeyed(&server.state, 0);
    std::fs::remove_file(server.state.join("audit.head")).unwrap();
    std::fs::remove_file(server.state.join("audit.key")).unwrap();
    let legacy = verify(&server.state, &[]);
    assert_eq!(legacy.code, 0, "{}{}", legacy.stdout, legacy.stderr);
    assert!(legacy.stdout.contains("unkeyed"), "{}", legacy.stdout);
    let records: i64 = legacy
        .stdout
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    server.launch();
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let anchored: Value = server.ok("GET", "/v1/audit", RAD_ADMIN, None);
    assert!(!anchored["items"].as_array().unwrap().is_empty());
    server.kill();
    let ok = verify(&server.state, &[]);
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains(&format!("({records} unkeyed from before keying)")),
        "{}",
        ok.stdout
    );
    let db = rusqlite::Connection::open(server.state.join("ward.db")).unwrap();
    let action: String = db
        .query_row(
            "SELECT action FROM audit WHERE seq = ?1",
            [records + 1],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(action, "audit.anchored");
}

#[test]
fn connections_over_the_limit_are_closed_and_the_service_answers_once_they_go() {
    let server = Server::start_in(
        tempdir(),
        2,
        "4Gi",
        2,
        "http: {header-timeout: 10m, max-connections: 4}",
        "http",
    );
    let address = server.url.trim_start_matches("http://").to_string();
    // Each held slot is seen taken once the server has answered on it.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&address).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: ward\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(
            &buf, b"HTTP/1.1 200",
            "a slot is given while there are some"
        );
        held.push(s);
    }
    let mut over = TcpStream::connect(&address).unwrap();
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: ward\r\n\r\n");
    assert!(
        closed_by_server(&mut over, Instant::now() + Duration::from_secs(60)),
        "the fifth connection is closed"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let r = ureq::get(&format!("{}/metrics", server.url))
            .set("Authorization", &format!("Bearer {METRICS}"))
            .call();
        if let Ok(r) = r {
            break r.into_string().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the service does not answer: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        figure(&text, "ward_api_connections_refused_total") >= 1,
        "{text}"
    );
}

#[test]
fn an_audit_key_file_that_cannot_be_read_stops_the_service() {
    let dir = tempdir();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0
state: state
components: .
audit-key-file: keys/audit.key
tenants:
  - name: clinic
    tokens: [{{name: op, role: operator, sha256: {}}}]
",
            hash("clinic-token")
        ),
    )
    .unwrap();
    let said = serve_refuses(&config);
    assert!(
        said.contains(&dir.path().join("keys/audit.key").display().to_string()),
        "{said}"
    );
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/audit.key"), "short").unwrap();
    let said = serve_refuses(&config);
    assert!(said.contains("at least 32 are needed"), "{said}");
}
