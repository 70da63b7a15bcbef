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
    let (summary, jobs) = run(&[
        probe(
            "w",
            "send",
            ", count: 1, size: 10",
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
