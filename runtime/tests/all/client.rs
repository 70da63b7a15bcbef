//! Ward's client commands against a real `ward serve` (and `ward dicom send` against DCMTK's
//! storescp): waiting for jobs, exit codes, JSON output, the paged audit trail.

use crate::dicom_scp::{storescp, Killed};
use crate::service::{Server, CARD_OP, RAD_ADMIN, RAD_OP, RAD_VIEW};
use crate::support::*;
use serde_json::Value;
use std::io::BufRead as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `ward ARGS` as a client of `server` with `token`.
fn client(server: &Server, token: &str, args: &[&str]) -> Output {
    let out = ward()
        .args(args)
        .env("WARD_URL", &server.url)
        .env("WARD_TOKEN", token)
        .output()
        .expect("the ward binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The JSON a successful `--json` command printed.
fn json_of(out: &Output) -> Value {
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.stdout))
}

/// A pipeline file `name` of two misbehave stages, `first` (ok) and `second` (`behaviour`).
fn two_stages(dir: &Path, name: &str, behaviour: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "api-version: 0.1
name: {name}
operators:
  - name: first
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: ok, sleep-ms: '200'}}
    input: [{{path: /payload}}]
  - name: second
    component: {{path: misbehave.wasm}}
    parameters: {{behaviour: {behaviour}, sleep-ms: '200'}}
    input: [{{path: /payload}}]
"
        ),
    )
    .unwrap();
    path
}

fn create_pipeline(server: &Server, file: &Path) -> Value {
    json_of(&client(
        server,
        RAD_OP,
        &["pipeline", "create", file.to_str().unwrap(), "--json"],
    ))
}

fn upload(server: &Server, dir: &Path) -> String {
    let p = json_of(&client(
        server,
        RAD_OP,
        &["payload", "upload", dir.to_str().unwrap(), "--json"],
    ));
    p["id"].as_str().unwrap().to_string()
}

/// `ward job create ... --json`: the job.
fn create_job(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["job", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    json_of(&client(server, RAD_OP, &all))
}

#[test]
fn job_wait_follows_each_stage_and_exits_0_on_success_and_1_on_failure() {
    let server = Server::start(2, "4Gi", 2);
    let dir = tempdir();
    let stored = create_pipeline(&server, &two_stages(dir.path(), "both-ok", "ok"));
    assert_eq!(
        (stored["name"].as_str(), stored["version"].as_i64()),
        (Some("both-ok"), Some(1))
    );
    create_pipeline(
        &server,
        &two_stages(dir.path(), "second-fails", "stage-error"),
    );
    let payload_dir = small_payload();
    let payload = upload(&server, payload_dir.path());

    let job = create_job(
        &server,
        &["--pipeline", "both-ok", "--payload", &payload, "--start"],
    );
    let id = job["id"].as_str().unwrap();
    let waited = client(&server, RAD_VIEW, &["job", "wait", id]);
    assert_eq!(waited.code, 0, "{}{}", waited.stdout, waited.stderr);
    let lines: Vec<&str> = waited.stdout.lines().collect();
    for stage in ["first", "second"] {
        assert!(
            lines.contains(&format!("  stage {stage}: succeeded").as_str())
                || lines
                    .iter()
                    .any(|l| l.starts_with(&format!("  stage {stage}: succeeded in "))),
            "{}",
            waited.stdout
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some(format!("job {id}: succeeded").as_str()),
        "{}",
        waited.stdout
    );

    // `job submit` uploads and queues; the failed stage is named with its reason.
    let submitted = json_of(&client(
        &server,
        RAD_OP,
        &[
            "job",
            "submit",
            "--pipeline",
            "second-fails",
            payload_dir.path().to_str().unwrap(),
            "--json",
        ],
    ));
    let failing = submitted["id"].as_str().unwrap();
    let waited = client(&server, RAD_VIEW, &["job", "wait", failing]);
    assert_eq!(waited.code, 1, "{}{}", waited.stdout, waited.stderr);
    let lines: Vec<&str> = waited.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  stage first: succeeded")),
        "{}",
        waited.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  stage second: failed")),
        "{}",
        waited.stdout
    );
    assert!(
        lines.contains(&format!("job {failing}: failed").as_str()),
        "{}",
        waited.stdout
    );

    // Nothing to wait for: exit 2, naming the job.
    let unknown = client(&server, RAD_VIEW, &["job", "wait", "job-nope"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("404") && unknown.stderr.contains("job-nope"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn job_wait_exits_3_when_the_service_dies_while_it_waits() {
    let mut server = Server::start(1, "4Gi", 1);
    server.pipeline(RAD_OP, "endless", "spin", "timeout: 10m");
    let payload_dir = small_payload();
    let payload = upload(&server, payload_dir.path());
    let job = create_job(
        &server,
        &["--pipeline", "endless", "--payload", &payload, "--start"],
    );
    let id = job["id"].as_str().unwrap().to_string();
    let mut waiting = Killed(
        ward()
            .args(["job", "wait", &id, "--interval", "100ms"])
            .env("WARD_URL", &server.url)
            .env("WARD_TOKEN", RAD_VIEW)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = waiting.0.stdout.take().unwrap();
    let (lines, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let running = format!("job {id}: running");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    while !seen.contains(&running) {
        let left = deadline.saturating_duration_since(Instant::now());
        match said.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no '{running}' ({e}): {seen:?}"),
        }
    }
    // A deadline ends the wait, not the job.
    let gave_up = client(&server, RAD_VIEW, &["job", "wait", &id, "--timeout", "1s"]);
    assert_eq!(gave_up.code, 1, "{}{}", gave_up.stdout, gave_up.stderr);
    assert!(
        gave_up.stdout.contains("still running after 1s"),
        "{}",
        gave_up.stdout
    );
    server.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = waiting.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ward job wait did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut waiting.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{seen:?} {stderr}");
    assert!(stderr.contains("the service failed"), "{stderr}");
}

#[test]
fn max_attempts_and_several_payloads_go_through_the_client() {
    let server = Server::start(2, "4Gi", 2);
    server.pipeline(RAD_OP, "inventory", "ok", "");
    let (one, two) = (small_payload(), small_payload());
    let payload = upload(&server, one.path());
    let job = create_job(
        &server,
        &[
            "--pipeline",
            "inventory",
            "--payload",
            &payload,
            "--max-attempts",
            "3",
        ],
    );
    assert_eq!(job["max_attempts"], 3, "{job}");
    assert_eq!(job["state"], "created");
    let id = job["id"].as_str().unwrap();
    let shown = json_of(&client(&server, RAD_VIEW, &["job", "show", id, "--json"]));
    assert_eq!(shown["max_attempts"], 3, "{shown}");
    let text = client(&server, RAD_VIEW, &["job", "show", id]);
    assert!(
        text.stdout.contains(&format!("{id}  created")) && text.stdout.contains("attempts 0/3"),
        "{}",
        text.stdout
    );
    // Out of range: refused before anything is sent.
    let before = json_of(&client(&server, RAD_VIEW, &["job", "list", "--json"]));
    let refused = client(
        &server,
        RAD_OP,
        &[
            "job",
            "create",
            "--pipeline",
            "inventory",
            "--payload",
            &payload,
            "--max-attempts",
            "11",
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--max-attempts"),
        "{}",
        refused.stderr
    );
    let after = json_of(&client(&server, RAD_VIEW, &["job", "list", "--json"]));
    assert_eq!(before["items"], after["items"], "nothing was created");

    // Two payload directories, one job, waited for: the stage sees both.
    let submitted = client(
        &server,
        RAD_OP,
        &[
            "job",
            "submit",
            "--pipeline",
            "inventory",
            one.path().to_str().unwrap(),
            two.path().to_str().unwrap(),
            "--max-attempts",
            "2",
            "--wait",
            "--json",
        ],
    );
    let done = json_of(&submitted);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["max_attempts"], 2);
    assert!(
        submitted.stderr.contains("stage stage: succeeded"),
        "progress goes to stderr with --json: {}",
        submitted.stderr
    );
    let out = tempdir();
    let target = format!("{}:stage", done["id"].as_str().unwrap());
    let got = client(
        &server,
        RAD_VIEW,
        &["results", "download", &target, out.path().to_str().unwrap()],
    );
    assert_eq!(got.code, 0, "{}", got.stderr);
    let inventory = read_json(&out.path().join("results/inventory.json"));
    let payload_files = inventory["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "payload")
        .map(|v| v["files"].clone());
    assert_eq!(
        payload_files,
        Some(4.into()),
        "two payloads of two files: {inventory}"
    );
}

#[test]
fn data_commands_print_text_by_default_and_json_with_the_flag() {
    let server = Server::start(2, "4Gi", 2);
    let dir = tempdir();
    create_pipeline(&server, &two_stages(dir.path(), "both-ok", "ok"));
    let payload_dir = small_payload();
    let payload = upload(&server, payload_dir.path());
    let json = |token: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--json");
        json_of(&client(&server, token, &all))
    };
    let pipelines = json(RAD_VIEW, &["pipeline", "list"]);
    assert_eq!(pipelines["items"][0]["name"], "both-ok");
    let pipeline = json(RAD_VIEW, &["pipeline", "show", "both-ok"]);
    assert!(pipeline["yaml"].as_str().unwrap().contains("name: second"));
    assert_eq!(
        json(RAD_VIEW, &["payload", "list"])["items"][0]["id"],
        payload.as_str()
    );
    assert_eq!(json(RAD_VIEW, &["payload", "show", &payload])["files"], 2);
    let dataset = json(
        RAD_OP,
        &[
            "dataset",
            "upload",
            "atlas",
            payload_dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        (dataset["name"].as_str(), dataset["files"].as_i64()),
        (Some("atlas"), Some(2))
    );
    assert_eq!(
        json(RAD_VIEW, &["dataset", "list"])["items"][0]["name"],
        "atlas"
    );
    assert!(json(CARD_OP, &["dataset", "list"])["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let job = create_job(&server, &["--pipeline", "both-ok", "--payload", &payload]);
    let id = job["id"].as_str().unwrap();
    let listed = json(RAD_VIEW, &["job", "list"]);
    assert_eq!(listed["items"][0]["id"], id);
    let cancelled = json(RAD_OP, &["job", "cancel", id]);
    assert_eq!(cancelled["state"], "cancelled");
    let started = json(RAD_OP, &["job", "start", id]);
    // Queued again; the scheduler may already have taken it by the time the answer is read.
    assert!(
        started["state"] == "queued" || started["state"] == "running",
        "{started}"
    );
    let records = json(RAD_ADMIN, &["audit", "list"]);
    assert!(
        records["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "job.cancelled" && r["object"] == id),
        "{records}"
    );

    // The same commands for people: lines, not JSON.
    for (token, args, wanted) in [
        (RAD_VIEW, vec!["job", "list"], id.to_string()),
        (RAD_VIEW, vec!["pipeline", "list"], "both-ok:1".to_string()),
        (
            RAD_VIEW,
            vec!["payload", "show", &payload],
            "2 files".to_string(),
        ),
        (RAD_VIEW, vec!["dataset", "list"], "atlas".to_string()),
        (
            RAD_ADMIN,
            vec!["audit", "list"],
            "job.cancelled".to_string(),
        ),
    ] {
        let out = client(&server, token, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(
            serde_json::from_str::<Value>(&out.stdout).is_err() && out.stdout.contains(&wanted),
            "{args:?}: {}",
            out.stdout
        );
    }
}

#[test]
fn the_audit_trail_comes_in_pages_with_a_cursor() {
    let server = Server::start(1, "1Gi", 1);
    // Each call of a valid token is one record; cardio's are not radiology's to read.
    for _ in 0..110 {
        server.ok("GET", "/v1/pipelines", RAD_ADMIN, None);
    }
    server.ok("GET", "/v1/pipelines", CARD_OP, None);
    let full = server.ok("GET", "/v1/audit?limit=1000", RAD_ADMIN, None);
    let full: Vec<Value> = full["items"].as_array().unwrap().clone();
    assert!(full.len() >= 110, "{}", full.len());
    assert!(full.iter().all(|r| r["tenant"] == "radiology"));

    let first = server.ok("GET", "/v1/audit", RAD_ADMIN, None);
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 100, "the default page");
    assert_eq!(first["next"], items[99]["seq"]);

    // Page by page, seven at a time: the same records, in order, none twice.
    let mut paged: Vec<i64> = Vec::new();
    let mut path = "/v1/audit?limit=7".to_string();
    loop {
        let page = server.ok("GET", &path, RAD_ADMIN, None);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        paged.extend(items.iter().map(|r| r["seq"].as_i64().unwrap()));
        match page["next"].as_i64() {
            Some(next) => {
                assert_eq!(items.len(), 7, "only the last page is short");
                assert_eq!(Some(next), items.last().unwrap()["seq"].as_i64());
                path = format!("/v1/audit?limit=7&after={next}");
            }
            None => break,
        }
    }
    let expected: Vec<i64> = full.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(paged[..expected.len()], expected[..]);
    assert!(paged.windows(2).all(|w| w[0] < w[1]), "{paged:?}");

    for (query, code) in [
        ("limit=0", "bad-limit"),
        ("limit=1001", "bad-limit"),
        ("limit=many", "bad-limit"),
        ("after=-3", "bad-after"),
    ] {
        let (status, body) =
            server.call("GET", &format!("/v1/audit?{query}"), Some(RAD_ADMIN), None);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    assert_eq!(
        server
            .call("GET", "/v1/audit?limit=1000", Some(RAD_OP), None)
            .0,
        403
    );

    // The client follows the pages to where the trail ended when it began, even one record
    // a page (each of its calls adds a record).
    let mut listing = Killed(
        ward()
            .args(["audit", "list", "--limit", "1", "--all", "--json"])
            .env("WARD_URL", &server.url)
            .env("WARD_TOKEN", RAD_ADMIN)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Read as it comes: a full pipe would stop the client.
    let mut pipe = listing.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut pipe, &mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while listing.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "ward audit list --all did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = reader.join().unwrap().unwrap();
    let all: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let listed: Vec<i64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(listed[..paged.len()], paged[..], "every record, in order");

    let text = client(&server, RAD_ADMIN, &["audit", "list", "--limit", "3"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert_eq!(text.stdout.lines().count(), 3, "{}", text.stdout);
    assert!(text.stdout.contains("GET /v1/pipelines"), "{}", text.stdout);
    assert!(
        text.stderr.contains("more: ward audit list --after "),
        "{}",
        text.stderr
    );
    let bad = client(&server, RAD_ADMIN, &["audit", "list", "--limit", "0"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("bad-limit"), "{}", bad.stderr);
}

#[test]
fn dicom_send_stores_every_dicom_file_of_a_directory_and_names_what_it_skips() {
    let pacs = tempdir();
    let (_pacs, port) = storescp(pacs.path(), "PACS");
    let dir = tempdir();
    let mut sent = 0;
    for (sub, slices) in [("a", 3), ("b/deeper", 2)] {
        let series = ward::sample::ct_series::write_ct_series(
            &dir.path().join(sub),
            &ward::sample::ct_series::CtSeriesOptions {
                slices,
                size: 16,
                seed: format!("client-{sub}"),
                ..Default::default()
            },
        )
        .unwrap();
        sent += series.files.len();
    }
    std::fs::write(dir.path().join("b/notes.txt"), "not DICOM").unwrap();
    let out = run_ward(&[
        "dicom",
        "send",
        dir.path().to_str().unwrap(),
        "--to",
        &format!("PACS@127.0.0.1:{port}"),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("sent {sent} of {sent} files")),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("notes.txt") && out.stderr.contains("skipped"),
        "{}",
        out.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored = std::fs::read_dir(pacs.path()).unwrap().count();
        if stored == sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "storescp holds {stored} of {sent}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_download_the_service_breaks_off_exits_3_and_a_refused_one_2() {
    let server = Server::start(1, "1Gi", 1);
    let payload_dir = small_payload();
    let payload = upload(&server, payload_dir.path());
    let out = tempdir();
    let target = out.path().join("back");
    let whole = client(
        &server,
        RAD_VIEW,
        &["payload", "download", &payload, target.to_str().unwrap()],
    );
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert!(target.join("sub/data.bin").is_file());
    // The payload's files gone behind the service's back: the answer has begun (200) when
    // the archive cannot be read, and the service ends the connection mid-body.
    std::fs::remove_dir_all(server.state.join("payloads").join(&payload)).unwrap();
    let broken = client(
        &server,
        RAD_VIEW,
        &[
            "payload",
            "download",
            &payload,
            out.path().join("again").to_str().unwrap(),
        ],
    );
    assert_eq!(broken.code, 3, "{}{}", broken.stdout, broken.stderr);
    assert!(
        broken.stderr.contains("the service failed"),
        "{}",
        broken.stderr
    );
    let refused = client(
        &server,
        RAD_VIEW,
        &[
            "payload",
            "download",
            "pl-nope",
            out.path().join("none").to_str().unwrap(),
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("404"), "{}", refused.stderr);
}
