//! Streaming ports through the real runtime: port-probe stages (conformance/stages/port-probe)
//! wired by pipeline files, their results and the job summary's channel figures.

use crate::support::*;
use ward::jobs::{FailureKind, JobStatus, JobSummary, StageStatus};

/// One `port-probe` operator: its name, behaviour, parameters and `ports:` block.
fn probe(name: &str, behaviour: &str, params: &str, ports: &str, requests: &str) -> String {
    format!(
        "  - name: {name}
    component:
      path: {{components}}/port_probe.wasm
    parameters: {{behaviour: {behaviour}{params}}}
    ports: {ports}
    requests: {{timeout: 60s{requests}}}
"
    )
}

fn run(operators: &[String]) -> (JobSummary, tempfile::TempDir) {
    let dir = tempdir();
    let payload = small_payload();
    let yaml = format!(
        "api-version: 0.1\nname: ports\noperators:\n{}",
        operators.concat()
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    run_pipeline(&pipeline, payload.path(), &[])
}

fn result_file(jobs: &tempfile::TempDir, stage: &str, file: &str) -> std::path::PathBuf {
    jobs.path()
        .join(format!("job/results/{stage}/results/{file}"))
}

fn text(jobs: &tempfile::TempDir, stage: &str, file: &str) -> String {
    let path = result_file(jobs, stage, file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const OUT: &str = "{out: [{name: out}]}";

fn reads(from: &str) -> String {
    format!("{{in: [{{name: in, from: {from}, port: out}}]}}")
}

#[test]
fn a_stream_arrives_whole_and_in_order() {
    let (summary, jobs) = run(&[
        probe("writer", "send", ", count: 40, size: 65536", OUT, ""),
        probe("reader", "recv", "", &reads("writer"), ""),
    ]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let received = read_json(&result_file(&jobs, "reader", "received.json"));
    assert_eq!(received["messages"], 40);
    assert_eq!(received["bytes"], 40 * 65536);
    let channel = &summary.ports[0];
    assert_eq!(
        (channel.writer.as_str(), channel.reader.as_str()),
        ("writer.out", "reader.in")
    );
    assert_eq!((channel.messages, channel.bytes), (40, 40 * 65536));
}

#[test]
fn a_slow_reader_bounds_what_the_writer_can_buffer() {
    let (summary, _jobs) = run(&[
        probe(
            "writer",
            "send",
            ", count: 24, size: 1048576",
            "{out: [{name: out, capacity: 2, max-message: 1Mi}]}",
            "",
        ),
        probe("reader", "recv", ", delay-ms: 20", &reads("writer"), ""),
    ]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let channel = &summary.ports[0];
    assert_eq!(channel.messages, 24);
    assert!(
        channel.peak_buffered_bytes <= 2 << 20 && channel.peak_buffered_messages <= 2,
        "back-pressure holds the channel at its capacity: {channel:?}"
    );
    assert!(
        channel.writer_blocked_s > 0.2,
        "the writer waited for the reader: {channel:?}"
    );
    let writer = summary.stage("writer").unwrap();
    assert!(
        writer.memory_peak_bytes.unwrap() < 16 << 20,
        "the writer never held the 24 MiB it sent: {writer:?}"
    );
}

#[test]
fn fan_out_gives_every_reader_every_message_and_fan_in_merges_writers() {
    let (summary, jobs) = run(&[
        probe("a", "send", ", count: 10, size: 1000", OUT, ""),
        probe("b", "send", ", count: 7, size: 3000", OUT, ""),
        probe("x", "recv", "", &reads("a"), ""),
        probe("y", "recv", "", &reads("a"), ""),
        probe(
            "merged",
            "recv",
            ", verify: false",
            "{in: [{name: in, from: a, port: out, fan-in: true}, {name: in, from: b, port: out, fan-in: true}]}",
            "",
        ),
    ]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let x = read_json(&result_file(&jobs, "x", "received.json"));
    let y = read_json(&result_file(&jobs, "y", "received.json"));
    assert_eq!(x["messages"], 10);
    assert_eq!(
        x, y,
        "both readers of a fanned-out port got the same stream"
    );
    let merged = read_json(&result_file(&jobs, "merged", "received.json"));
    assert_eq!(merged["messages"], 17);
    assert_eq!(merged["bytes"], 10 * 1000 + 7 * 3000);
    assert_eq!(summary.ports.len(), 4, "a->x, a->y, a->merged, b->merged");
}

#[test]
fn a_writer_that_traps_mid_stream_is_named_to_its_reader() {
    let (summary, jobs) = run(&[
        probe("writer", "trap-after", ", count: 3, size: 100", OUT, ""),
        probe("reader", "expect-peer-failed", "", &reads("writer"), ""),
    ]);
    assert_eq!(summary.status, JobStatus::Failed);
    let error = text(&jobs, "reader", "error.txt");
    assert!(
        error.contains("stage 'writer' failed: trap"),
        "the reader is told who failed and why: {error}"
    );
    let failure = summary.failure.as_ref().unwrap();
    assert_eq!(
        failure.stage.as_deref(),
        Some("writer"),
        "the job's failure is the root cause, not the reader that gave up after it"
    );
    assert_eq!(failure.reason.kind, FailureKind::Trap);
    assert_eq!(summary.stage("reader").unwrap().status, StageStatus::Failed);
    assert_eq!(summary.ports[0].messages, 3);
}

#[test]
fn stages_waiting_on_each_other_are_ended_as_deadlocked_naming_them() {
    let started = std::time::Instant::now();
    let ring = "{in: [{name: in, from: OTHER, port: out}], out: [{name: out}]}";
    let (summary, _jobs) = run(&[
        probe(
            "left",
            "recv-then-send",
            "",
            &ring.replace("OTHER", "right"),
            "",
        ),
        probe(
            "right",
            "recv-then-send",
            "",
            &ring.replace("OTHER", "left"),
            "",
        ),
    ]);
    assert_eq!(summary.status, JobStatus::Failed);
    for name in ["left", "right"] {
        let reason = summary.stage(name).unwrap().reason.clone().unwrap();
        assert_eq!(reason.kind, FailureKind::Deadlock, "{reason:?}");
        assert!(
            reason
                .message
                .contains("'left' waits to receive on 'in' from right")
                && reason
                    .message
                    .contains("'right' waits to receive on 'in' from left"),
            "{reason:?}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "found at once, not at the 60 s deadline"
    );
}

#[test]
fn misuse_of_ports_gets_precise_errors() {
    let (summary, jobs) = run(&[
        probe(
            "big",
            "oversize",
            ", size: 2048",
            "{out: [{name: out, max-message: 1Ki}]}",
            "",
        ),
        probe("big-reader", "recv", "", &reads("big"), ""),
        probe("closer", "send-after-close", "", OUT, ""),
        probe("closer-reader", "recv", "", &reads("closer"), ""),
        probe("w", "send", ", count: 2, size: 10", OUT, ""),
        probe("ender", "recv-after-end", "", &reads("w"), ""),
        probe("twice", "open-twice", "", &reads("w2"), ""),
        probe("w2", "send", ", count: 0", OUT, ""),
        probe("unknown", "open-unknown", "", "{}", ""),
    ]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    assert_eq!(text(&jobs, "big", "error.txt").trim(), "too-large 1024");
    assert!(text(&jobs, "closer", "error.txt").contains("Closed"));
    assert!(text(&jobs, "ender", "error.txt").contains("Ended"));
    assert!(text(&jobs, "twice", "error.txt").contains("AlreadyOpen"));
    let unknown = text(&jobs, "unknown", "error.txt");
    assert!(
        unknown.contains("UnknownPort") && unknown.contains("no-such-port"),
        "{unknown}"
    );
}

#[test]
fn a_stage_lists_its_declared_ports() {
    // The lister never reads its input: a writer that sent anything could find every
    // reader gone, whichever stage a busy machine runs first. It sends nothing.
    let (summary, jobs) = run(&[
        probe(
            "w",
            "send",
            ", count: 0",
            "{out: [{name: out, type: ward/test-v1, capacity: 3, max-message: 4Ki}]}",
            "",
        ),
        probe(
            "lister",
            "declared",
            "",
            "{in: [{name: in, from: w, port: out, type: ward/test-v1}], out: [{name: out}]}",
            "",
        ),
        probe("sink", "recv", "", &reads("lister"), ""),
    ]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let declared = text(&jobs, "lister", "declared.json");
    for expected in [
        "\"in\"",
        "\"out\"",
        "ward/test-v1",
        "4096",
        "\"w\"",
        "\"sink\"",
    ] {
        assert!(declared.contains(expected), "{expected} in {declared}");
    }
}

/// Attack: a stage that blocks on a port whose writer never writes nor ends is ended by its
/// deadline (nothing is deadlocked: the writer is busy elsewhere), and the host goes on.
#[test]
fn a_stage_blocked_on_a_silent_port_hits_its_deadline() {
    let (summary, _jobs) = run(&[
        format!(
            "  - name: silent
    component:
      path: {{components}}/misbehave.wasm
    parameters: {{behaviour: sleep, sleep-ms: 60000}}
    ports: {OUT}
    requests: {{timeout: 3s}}
"
        ),
        format!(
            "  - name: blocked
    component:
      path: {{components}}/misbehave.wasm
    parameters: {{behaviour: block-on-port, port: in}}
    ports: {}
    requests: {{timeout: 1s}}
",
            reads("silent")
        ),
    ]);
    assert_eq!(summary.status, JobStatus::Failed);
    let blocked = summary.stage("blocked").unwrap().reason.clone().unwrap();
    assert_eq!(blocked.kind, FailureKind::Deadline, "{blocked:?}");
    assert!(blocked.message.contains("1.0s"), "{blocked:?}");
}

/// `ward run` on `pipeline`, its job in `jobs`, while its peak resident memory (VmHWM) is
/// read from /proc until it exits: the exit code and the last figure read, in bytes.
fn ward_run_peak_rss(
    pipeline: &std::path::Path,
    payload: &std::path::Path,
    jobs: &std::path::Path,
) -> (Option<i32>, u64) {
    let mut child = ward()
        .args(["run", "--no-progress", "--results"])
        .arg(jobs.join("job"))
        .arg(pipeline)
        .arg("--payload")
        .arg(payload)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the ward binary runs");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let text = std::fs::read_to_string(&status_file).unwrap_or_default();
        if let Some(kib) = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (status.code(), peak)
}

/// Attack: a writer of 256Mi whose port may hold 1024 messages of 64 MiB sends 48 of them
/// (3 GiB) to a reader that computes and never receives. The host holds no more than the
/// job's channel budget (64 MiB by default): the writer waits for room until its deadline,
/// the reader finishes, and `ward run` reports the job.
#[test]
fn a_reader_that_never_receives_cannot_make_the_host_hold_more_than_the_channel_budget() {
    let dir = tempdir();
    let payload = small_payload();
    let yaml = format!(
        "api-version: 0.1
name: hoard
operators:
{}  - name: idle
    component:
      path: {{components}}/misbehave.wasm
    parameters: {{behaviour: sleep, sleep-ms: 6000}}
    ports: {}
    requests: {{timeout: 60s}}
",
        probe(
            "writer",
            "send",
            ", count: 48, size: 67108864",
            "{out: [{name: out, capacity: 1024, max-message: 64Mi}]}",
            ", memory: 256Mi",
        )
        .replace("timeout: 60s", "timeout: 4s"),
        reads("writer"),
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let (code, peak_rss) = ward_run_peak_rss(&pipeline, payload.path(), dir.path());
    eprintln!("ward run: peak RSS {peak_rss} bytes");
    assert_eq!(code, Some(1), "ward run ends and reports the failed job");
    let summary = read_json(&dir.path().join("job/summary.json"));
    let budget = &summary["port_budget"];
    eprintln!("port_budget: {budget}");
    assert_eq!(budget["budget_bytes"], 64 << 20, "{summary:#}");
    let peak = budget["peak_buffered_bytes"].as_u64().unwrap();
    assert!(
        peak <= 64 << 20,
        "the job's channels held {peak} bytes: {summary:#}"
    );
    let channel = &summary["ports"][0];
    assert!(
        channel["peak_buffered_bytes"].as_u64().unwrap() <= 64 << 20,
        "{channel:#}"
    );
    assert_eq!(channel["messages"], 1, "one message fits: {channel:#}");
    assert!(
        budget["writer_blocked_s"].as_f64().unwrap() > 0.0,
        "{budget:#}"
    );
    let stage = |name: &str| {
        summary["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let writer = stage("writer");
    assert_eq!(writer["reason"]["kind"], "deadline", "{writer:#}");
    assert_eq!(stage("idle")["status"], "succeeded", "{summary:#}");
    assert!(
        peak_rss < 1 << 30,
        "ward run's peak resident memory was {peak_rss} bytes, not the 3 GiB sent"
    );
}

/// A budget set in the pipeline bounds what the job's channels hold, whatever their capacity.
#[test]
fn the_pipelines_channel_budget_is_honoured() {
    let dir = tempdir();
    let payload = small_payload();
    let yaml = format!(
        "api-version: 0.1\nname: budgeted\nports-budget: 8Mi\noperators:\n{}{}",
        probe(
            "writer",
            "send",
            ", count: 32, size: 1048576",
            "{out: [{name: out, capacity: 1024, max-message: 1Mi}]}",
            "",
        ),
        probe("reader", "recv", ", delay-ms: 20", &reads("writer"), ""),
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let (summary, jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let received = read_json(&result_file(&jobs, "reader", "received.json"));
    assert_eq!(received["messages"], 32);
    let budget = summary.port_budget.clone().unwrap();
    assert_eq!(budget.budget_bytes, 8 << 20);
    assert!(budget.peak_buffered_bytes <= 8 << 20, "{budget:?}");
    assert!(
        summary.ports[0].peak_buffered_bytes <= 8 << 20
            && summary.ports[0].peak_buffered_messages <= 8,
        "{:?}",
        summary.ports[0]
    );
    assert!(
        budget.writer_blocked_s > 0.0,
        "the writer waited: {budget:?}"
    );
}

/// A port whose single largest message could never fit the job's channel budget is refused
/// before anything runs, at the line it is declared on, with both figures.
#[test]
fn validate_refuses_a_max_message_over_the_channel_budget() {
    let dir = tempdir();
    let yaml = format!(
        "api-version: 0.1\nname: too-big\nports-budget: 8Mi\noperators:\n{}{}",
        probe(
            "writer",
            "send",
            "",
            "{out: [{name: out, max-message: 16Mi}]}",
            "",
        ),
        probe("reader", "recv", "", &reads("writer"), ""),
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let out = run_ward(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("pipeline.yaml:9:44: operator 'writer': output port 'out': max-message 16 MiB (16777216 bytes) is more than the job's channel budget of 8 MiB (8388608 bytes; `ports-budget` at "),
        "{}",
        out.stderr
    );
}

/// `ward run` refuses a budget over the host's `--max-ports-budget` before anything runs.
#[test]
fn ward_run_refuses_a_channel_budget_over_its_limit() {
    let dir = tempdir();
    let payload = small_payload();
    let yaml = format!(
        "api-version: 0.1\nname: greedy\nports-budget: 2Gi\noperators:\n{}{}",
        probe("writer", "send", ", count: 1, size: 10", OUT, ""),
        probe("reader", "recv", "", &reads("writer"), ""),
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let out = ward_run(&pipeline, payload.path(), &["--no-progress"]);
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains("pipeline.yaml:3:15: ports-budget 2147483648 bytes is over this host's limit of 1073741824 bytes"),
        "{}",
        out.stderr
    );
    let job = dir.path().join("job");
    let out = ward_run(
        &pipeline,
        payload.path(),
        &[
            "--no-progress",
            "--max-ports-budget",
            "2Gi",
            "--results",
            job.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "allowed: {}", out.stderr);
    let summary = read_json(&job.join("summary.json"));
    assert_eq!(summary["port_budget"]["budget_bytes"], 2u64 << 30);
}

/// `ward serve` counts a job's channel budget in its memory: over the tenant's quota it is
/// refused, beside its port-joined stages it must fit the node, and within both it runs.
#[test]
fn ward_serve_counts_the_channel_budget_in_a_jobs_memory() {
    use crate::service::{Server, RAD_OP};
    use serde_json::json;
    let server = Server::start(2, "1Gi", 1);
    let payload_dir = small_payload();
    let payload = server.payload(RAD_OP, payload_dir.path());
    let store = |name: &str, budget: &str| {
        let yaml = format!(
            "api-version: 0.1\nname: {name}\nports-budget: {budget}\noperators:\n{}{}",
            probe(
                "writer",
                "send",
                ", count: 4, size: 1000",
                OUT,
                ", memory: 256Mi"
            ),
            probe("reader", "recv", "", &reads("writer"), ", memory: 256Mi"),
        )
        .replace("{components}/", "");
        let (code, v) = server.send_raw(
            "POST",
            "/v1/pipelines",
            RAD_OP,
            "application/yaml",
            yaml.as_bytes(),
        );
        assert_eq!(code, 201, "{v}");
    };
    let submit = |pipeline: &str| {
        server.call(
            "POST",
            "/v1/jobs",
            Some(RAD_OP),
            Some(json!({"pipeline": pipeline, "payload": payload, "start": true})),
        )
    };
    // Radiology's memory quota is the default 4Gi.
    store("over-quota", "8Gi");
    let (code, body) = submit("over-quota");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("over-quota")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("channel budget (ports-budget) is 8589934592 bytes")
            && message.contains("quota of 4294967296 bytes"),
        "{message}"
    );
    // 256Mi + 256Mi of stages fit the node's 1Gi; with 600Mi of channels they do not.
    store("over-capacity", "600Mi");
    let (code, body) = submit("over-capacity");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("over-capacity")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("needs {} bytes", (256 + 256 + 600) << 20)),
        "{body}"
    );
    store("fits", "256Mi");
    let (code, job) = submit("fits");
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(server.wait(RAD_OP, id)["state"], "succeeded");
}

/// A writer waiting for room in the channel budget, whose reader waits on another of its
/// ports, can never go on: both are ended as deadlocked at once, not at their deadline.
#[test]
fn a_writer_waiting_on_the_budget_for_a_reader_waiting_on_it_is_deadlocked() {
    let dir = tempdir();
    let payload = small_payload();
    let yaml = format!(
        "api-version: 0.1
name: budget-deadlock
ports-budget: 4Mi
operators:
{}  - name: reader
    component:
      path: {{components}}/misbehave.wasm
    parameters: {{behaviour: block-on-port, port: side}}
    ports: {{in: [{{name: in, from: writer, port: out}}, {{name: side, from: writer}}]}}
    requests: {{timeout: 60s}}
",
        probe(
            "writer",
            "send",
            ", count: 48, size: 1048576",
            "{out: [{name: out, capacity: 1024, max-message: 1Mi}, {name: side}]}",
            "",
        ),
    );
    let pipeline = write_pipeline(dir.path(), &yaml);
    let (summary, _jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    assert_eq!(summary.status, JobStatus::Failed);
    for name in ["writer", "reader"] {
        let reason = summary.stage(name).unwrap().reason.clone().unwrap();
        assert_eq!(reason.kind, FailureKind::Deadlock, "{name}: {reason:?}");
        assert!(
            reason.message.contains(
                "'writer' waits to send on 'out' for room in the job's channel budget of 4194304 bytes (ports-budget), full of messages for reader"
            ) && reason
                .message
                .contains("'reader' waits to receive on 'side' from writer"),
            "{reason:?}"
        );
    }
    // Kind `deadlock`, not `deadline`: found when both waited, not at the 60 s deadline.
    assert_eq!(summary.ports[0].messages, 4, "{:?}", summary.ports[0]);
}
