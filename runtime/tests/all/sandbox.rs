//! Stages that fail in every way a stage can: each ends as failed with a precise reason,
//! the payload is unchanged, the host goes on, and other stages are unaffected.

use crate::support::*;
use ward::jobs::{FailureKind, JobStatus, JobSummary, StageStatus};
use ward::volumes::tree_digest;

/// Runs one misbehaving stage on a small payload and checks the payload is unchanged.
fn misbehave(behaviour: &str, requests: &str) -> (JobSummary, tempfile::TempDir) {
    let dir = tempdir();
    let payload = small_payload();
    let before = tree_digest(payload.path()).unwrap();
    let pipeline = misbehave_pipeline(dir.path(), behaviour, requests);
    let (summary, jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    assert_eq!(
        tree_digest(payload.path()).unwrap(),
        before,
        "{behaviour}: the payload changed"
    );
    assert_eq!(
        summary.payload.after.as_ref(),
        Some(&before),
        "the summary records the payload digest"
    );
    (summary, jobs)
}

fn failure(summary: &JobSummary) -> (FailureKind, String) {
    assert_eq!(summary.status, JobStatus::Failed, "{summary:#?}");
    let failure = summary
        .failure
        .as_ref()
        .expect("a failed job names its failure");
    assert_eq!(failure.stage.as_deref(), Some("victim"));
    assert_eq!(summary.stages[0].status, StageStatus::Failed);
    (failure.reason.kind, failure.reason.to_string())
}

#[test]
fn a_well_behaved_stage_succeeds_and_sees_exactly_its_volumes() {
    let (summary, jobs) = misbehave("ok", "memory: 64Mi");
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let inventory = read_json(
        &jobs
            .path()
            .join("job/results/victim/results/inventory.json"),
    );
    let volumes = inventory["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2, "{inventory:#}");
    assert_eq!(volumes[0]["kind"], "payload");
    assert_eq!(volumes[0]["path"], "/payload");
    assert_eq!(volumes[0]["read_only"], true);
    assert_eq!(volumes[0]["files"], 2, "the stage sees the payload's files");
    assert_eq!(volumes[1]["kind"], "results");
    assert_eq!(volumes[1]["read_only"], false);
    assert_eq!(inventory["tenant"], "test");
    assert_eq!(inventory["parameters"][0][0], "behaviour");
    let peak = summary.stages[0].memory_peak_bytes.unwrap();
    assert!(
        peak > 0 && peak <= 64 << 20,
        "peak memory {peak} is measured and under the cap"
    );
}

#[test]
fn a_panic_is_reported_verbatim_with_a_backtrace() {
    let (summary, jobs) = misbehave("panic", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Trap);
    assert!(
        message.contains("deliberate panic: the stage gave up"),
        "{message}"
    );
    let backtrace = summary.stages[0]
        .reason
        .as_ref()
        .unwrap()
        .backtrace
        .clone()
        .unwrap_or_default();
    assert!(
        backtrace.contains("misbehave"),
        "the guest backtrace names the stage's functions: {backtrace}"
    );
    let log = std::fs::read_to_string(jobs.path().join("job/logs/victim.log")).unwrap();
    assert!(
        log.contains("deliberate panic"),
        "stderr is captured into the stage log: {log}"
    );
}

#[test]
fn a_trap_names_the_trap() {
    let (summary, _jobs) = misbehave("trap", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Trap);
    assert!(message.contains("unreachable"), "{message}");
}

#[test]
fn stage_errors_are_reported_as_given() {
    let (summary, _jobs) = misbehave("stage-error", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::StageError);
    assert_eq!(message, "deliberate failure requested by the test");
    let (summary, _jobs) = misbehave("invalid-input", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::InvalidInput);
    assert_eq!(message, "invalid input: deliberately rejecting the input");
    let (summary, _jobs) = misbehave("exit", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Exit);
    // WASI 0.2 carries only success or failure through exit, not the number.
    assert!(
        message.contains("exited with a failure status"),
        "{message}"
    );
}

#[test]
fn memory_past_the_cap_ends_the_stage() {
    let (summary, _jobs) = misbehave("oom", "memory: 200Mi");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(message.contains("over its cap of 200 MiB"), "{message}");
    let peak = summary.stages[0].memory_peak_bytes.unwrap();
    assert!(peak <= 200 << 20, "peak {peak} stayed under the cap");
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let started = std::time::Instant::now();
    let (summary, _jobs) = misbehave("spin", "timeout: 500ms");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Deadline);
    assert!(message.contains("timeout of 500"), "{message}");
    // Not a timing assertion on Ward's speed: only that the deadline ended the loop at all.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn unbounded_recursion_overflows_the_stack_not_the_host() {
    // Deep frames with locals in linear memory run off the shadow stack.
    let (summary, _jobs) = misbehave("recurse", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Trap, "{message}");
    assert!(
        message.contains("out of bounds memory access")
            && message.contains("stack in linear memory"),
        "{message}"
    );
    // Small frames run off the wasm stack, which the engine bounds.
    let (summary, _jobs) = misbehave("recurse-native", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::StackOverflow, "{message}");
}

#[test]
fn the_payload_cannot_be_written_or_deleted() {
    let (summary, _jobs) = misbehave("write-payload", "");
    let (_, message) = failure(&summary);
    assert!(
        !message.contains("ALLOWED"),
        "a write went through: {message}"
    );
    assert!(message.contains("create in /payload: refused"), "{message}");
    assert!(message.contains("delete /payload/"), "{message}");
}

#[test]
fn paths_outside_the_volumes_cannot_be_read() {
    let (summary, jobs) = misbehave("escape", "");
    let (kind, message) = failure(&summary);
    // Every read and every link followed was refused.
    let attempts = message
        .split("escape attempts: ")
        .nth(1)
        .unwrap_or_default();
    for attempt in attempts
        .split("; ")
        .filter(|a| a.starts_with("read") || a.starts_with("follow"))
    {
        assert!(
            attempt.contains(": refused"),
            "an escape went through: {attempt}"
        );
    }
    assert!(message.contains("read /etc/passwd: refused"), "{message}");
    assert!(message.contains("read ../etc/passwd: refused"), "{message}");
    // A link with a relative target can be planted, but not followed from inside ...
    assert!(message.contains("plant up-link: ALLOWED"), "{message}");
    assert!(message.contains("follow up-link: refused"), "{message}");
    assert!(message.contains("plant abs-link: refused"), "{message}");
    // ... and the host removes it and fails the stage, before anyone downstream sees it.
    assert_eq!(kind, FailureKind::Escape, "{message}");
    assert!(
        message.contains("/results/up-link -> ../../../../../../../../etc/passwd"),
        "{message}"
    );
    let results = jobs.path().join("job/results/victim/results");
    assert!(
        std::fs::symlink_metadata(results.join("up-link")).is_err(),
        "the link is gone"
    );
}

#[test]
fn a_flooding_stage_is_capped_and_still_reported() {
    let (summary, jobs) = misbehave("flood", "");
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let log_size = std::fs::metadata(jobs.path().join("job/logs/victim.log"))
        .unwrap()
        .len();
    assert!(
        log_size <= ward::jobs::LOG_BUDGET_BYTES + 4096,
        "log is {log_size} bytes"
    );
    assert!(
        summary.stages[0].log_dropped_bytes > 0,
        "dropped bytes are counted"
    );
    let log = std::fs::read_to_string(jobs.path().join("job/logs/victim.log")).unwrap();
    assert!(log.contains("log budget of"), "the log says it was cut");
}

#[test]
fn args_and_environment_are_only_what_the_pipeline_gives() {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: env
operators:
  - name: victim
    component: {path: '{components}/misbehave.wasm'}
    parameters: {behaviour: env}
    env: {MODE: fast}
    args: [--flag]
",
    );
    let (summary, jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let report = read_json(
        &jobs
            .path()
            .join("job/results/victim/results/environment.json"),
    );
    assert_eq!(report["args"], serde_json::json!(["victim", "--flag"]));
    // The host's own environment (PATH, HOME, ...) is not inherited.
    assert_eq!(report["env"], serde_json::json!([["MODE", "fast"]]));
}

/// A failing stage fails the job and skips its dependents, while an independent branch of
/// the same job runs and succeeds.
#[test]
fn a_failure_skips_dependents_but_not_independent_stages() {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: branches
operators:
  - name: broken
    component: {path: '{components}/misbehave.wasm'}
    parameters: {behaviour: panic}
  - name: after-broken
    component: {path: '{components}/misbehave.wasm'}
    input: [{from: broken, path: /in}]
  - name: two-after-broken
    component: {path: '{components}/misbehave.wasm'}
    input: [{from: after-broken, path: /in}]
  - name: independent
    component: {path: '{components}/misbehave.wasm'}
    input: [{path: /payload}]
  - name: after-independent
    component: {path: '{components}/misbehave.wasm'}
    input: [{from: independent, path: /in}, {path: /payload}]
",
    );
    let (summary, jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    assert_eq!(summary.status, JobStatus::Failed);
    let status = |name: &str| summary.stage(name).unwrap().status;
    assert_eq!(status("broken"), StageStatus::Failed);
    assert_eq!(status("after-broken"), StageStatus::Skipped);
    assert_eq!(
        status("two-after-broken"),
        StageStatus::Skipped,
        "skips propagate downstream"
    );
    assert_eq!(status("independent"), StageStatus::Succeeded);
    assert_eq!(status("after-independent"), StageStatus::Succeeded);
    let skipped = summary
        .stage("after-broken")
        .unwrap()
        .reason
        .as_ref()
        .unwrap();
    assert_eq!(skipped.kind, FailureKind::UpstreamFailed);
    assert!(skipped.message.contains("'broken'"));
    // The downstream stage saw its upstream's results read-only and the payload.
    let inventory = read_json(
        &jobs
            .path()
            .join("job/results/after-independent/results/inventory.json"),
    );
    let kinds: Vec<&str> = inventory["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["input-from-stage", "payload", "results"]);
    assert_eq!(inventory["volumes"][0]["source"], "independent");
    assert_eq!(
        inventory["volumes"][0]["files"], 1,
        "it sees the upstream's inventory.json"
    );
    // The summary on disk is the final one.
    let on_disk = read_json(&jobs.path().join("job/summary.json"));
    assert_eq!(on_disk["status"], "failed");
    assert_eq!(on_disk["failure"]["stage"], "broken");
}

/// Several jobs share the engine at once; a trapping one does not disturb the others.
#[test]
fn concurrent_jobs_are_isolated() {
    let handles: Vec<_> = ["ok", "panic", "ok", "oom", "ok"]
        .into_iter()
        .map(|behaviour| {
            std::thread::spawn(move || {
                let (summary, _jobs) = misbehave(behaviour, "memory: 128Mi");
                (behaviour, summary.status)
            })
        })
        .collect();
    for h in handles {
        let (behaviour, status) = h.join().expect("the host thread survives");
        let expected = if behaviour == "ok" {
            JobStatus::Succeeded
        } else {
            JobStatus::Failed
        };
        assert_eq!(status, expected, "{behaviour}");
    }
}

/// A stage without declared ports that opens one, and asks for a GPU on a host without one,
/// gets errors it can handle, not traps.
#[test]
fn undeclared_ports_and_a_missing_gpu_answer_with_errors_not_traps() {
    let (summary, jobs) = misbehave("undeclared", "");
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let report = read_json(
        &jobs
            .path()
            .join("job/results/victim/results/undeclared.json"),
    );
    for (key, direction) in [("open-input", "input"), ("open-output", "output")] {
        let answer = report[key].as_str().unwrap();
        assert!(
            answer.contains("UnknownPort")
                && answer.contains(&format!(
                    "no {direction} port 'slices' is declared for this operator (it declares none)"
                )),
            "{report}"
        );
    }
    assert_eq!(report["device"], serde_json::Value::Null, "no GPU device");
    assert!(
        report["alloc"].as_str().unwrap().contains("NoDevice"),
        "{report}"
    );
}

/// Two independent stages overlap when two CPU slots are free, and run one after the other
/// when there is one.
#[test]
fn independent_stages_run_concurrently_within_the_cpu_slots() {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: parallel
parameters: {behaviour: sleep, sleep-ms: 400}
operators:
  - name: left
    component: {path: '{components}/misbehave.wasm'}
  - name: right
    component: {path: '{components}/misbehave.wasm'}
",
    );
    let overlap = |slots: u32| {
        let jobs = tempdir();
        let request = ward::jobs::JobRequest {
            pipeline: ward::pipeline::load(&pipeline).unwrap(),
            payload: payload.path().to_path_buf(),
            job_dir: jobs.path().join("job"),
            job_id: ward::jobs::new_job_id(),
            tenant: "test".into(),
            parameters: Default::default(),
            datasets: Default::default(),
            cpu_slots: slots,
            cancel: None,
            preempted: None,
        };
        let s = ward::jobs::run_job(
            engine(),
            &request,
            std::sync::Arc::new(ward::jobs::NoObserver),
        )
        .unwrap();
        assert_eq!(s.status, JobStatus::Succeeded, "{s:#?}");
        let span = |name: &str| {
            let r = s.stage(name).unwrap();
            let start = r.started_at_s.unwrap();
            (start, start + r.duration_s.unwrap())
        };
        let (l, r) = (span("left"), span("right"));
        l.0 < r.1 && r.0 < l.1
    };
    assert!(overlap(2), "with two slots the stages overlap");
    assert!(!overlap(1), "with one slot they do not");
}

#[test]
fn a_huge_error_message_is_cut() {
    let (summary, jobs) = misbehave("huge-error", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::StageError);
    assert!(message.len() < 20_000, "{} bytes kept", message.len());
    assert!(message.ends_with("bytes cut]"), "the cut is marked");
    let on_disk = std::fs::metadata(jobs.path().join("job/summary.json"))
        .unwrap()
        .len();
    assert!(on_disk < 100_000, "summary.json is {on_disk} bytes");
}

/// A stage blocked in a host call (sleeping) is ended by its deadline, not when it wakes.
#[test]
fn a_stage_waiting_in_a_host_call_hits_the_deadline() {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: sleeper
operators:
  - name: victim
    component: {path: '{components}/misbehave.wasm'}
    parameters: {behaviour: sleep, sleep-ms: 600000}
    requests: {timeout: 500ms}
",
    );
    let started = std::time::Instant::now();
    let (summary, _jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Deadline, "{message}");
    assert!(
        message.contains("while waiting in a host call"),
        "{message}"
    );
    // The stage asked to sleep ten minutes; only that it did not is asserted.
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
fn holding_thousands_of_files_open_is_refused_at_the_handle_bound() {
    let (summary, _jobs) = misbehave("open-files", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::HandleLimit, "{message}");
    assert!(
        message.starts_with("handle limit: the stage held more than 4096"),
        "{message}"
    );
}

#[test]
fn a_huge_log_message_is_cut_to_the_bound() {
    let (summary, jobs) = misbehave("huge-log", "memory: 512Mi");
    assert_eq!(summary.status, JobStatus::Succeeded, "{summary:#?}");
    let log = std::fs::read_to_string(jobs.path().join("job/logs/victim.log")).unwrap();
    assert!(log.len() < 20_000, "the log holds {} bytes", log.len());
    assert_eq!(
        log.matches("bytes cut]").count(),
        1,
        "the cut is marked once"
    );
    assert!(
        log.contains(&format!(
            "[{} bytes cut]",
            (64 << 20) - ward::host::stage_log::MAX_MESSAGE_BYTES
        )),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
}

/// An honest job shares the engine with attacking ones and still gets its exact result.
#[test]
fn an_honest_job_is_unaffected_by_attacks_beside_it() {
    let payload = tempdir();
    ward::sample::ct_series::write_ct_series(
        payload.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 16,
            size: 96,
            ..Default::default()
        },
    )
    .unwrap();
    components_dir();
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let (alone, alone_jobs) = run_pipeline(&example, payload.path(), &[]);
    assert_eq!(alone.status, JobStatus::Succeeded);
    // (behaviour, requests, whether the attack's own job fails)
    let attacks = [
        ("oom", "memory: 256Mi", true),
        ("spin", "timeout: 2s", true),
        ("flood", "", false),
        ("open-files", "", true),
        ("escape", "", true),
        ("fill-disk", "disk: 20Mi", true),
        ("recurse", "", true),
        ("recurse-native", "", true),
        ("panic", "", true),
        ("write-payload", "", true),
        ("huge-log", "memory: 512Mi", false),
        ("block-on-port", "timeout: 2s", true),
    ];
    let attackers: Vec<_> = attacks
        .into_iter()
        .map(|(b, r, fails)| {
            (
                b,
                fails,
                std::thread::spawn(move || misbehave(b, r).0.status),
            )
        })
        .collect();
    let (beside, beside_jobs) = run_pipeline(&example, payload.path(), &[]);
    for (behaviour, fails, attacker) in attackers {
        let status = attacker.join().expect("the host survives every attack");
        let expected = if fails {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        };
        assert_eq!(status, expected, "{behaviour}");
    }
    assert_eq!(beside.status, JobStatus::Succeeded, "{beside:#?}");
    let stats = |jobs: &tempfile::TempDir| {
        std::fs::read(jobs.path().join("job/results/segment/labels/stats.json")).unwrap()
    };
    assert_eq!(
        stats(&alone_jobs),
        stats(&beside_jobs),
        "the same statistics as when it ran alone"
    );
}

/// Two memories, each under the cap, together over it: the cap holds in aggregate.
#[test]
fn the_memory_cap_holds_across_several_memories() {
    let component = repo_root().join("conformance/stages/two-memories.wat");
    let payload = small_payload();
    let run = |memory: &str| {
        let dir = tempdir();
        let pipeline = write_pipeline(
            dir.path(),
            &format!(
                "api-version: 0.1
name: two-memories
operators:
  - name: victim
    component: {{path: '{}'}}
    requests: {{memory: {memory}}}
",
                component.display()
            ),
        );
        run_pipeline(&pipeline, payload.path(), &[]).0
    };
    let capped = run("200Mi");
    let (kind, message) = failure(&capped);
    assert_eq!(kind, FailureKind::MemoryLimit, "{message}");
    assert!(message.contains("over its cap of 200 MiB"), "{message}");
    assert!(capped.stages[0].memory_peak_bytes.unwrap() <= 200 << 20);
    let roomy = run("300Mi");
    assert_eq!(
        roomy.status,
        JobStatus::Succeeded,
        "both memories fit under 300 MiB: {roomy:#?}"
    );
}

#[test]
fn a_huge_path_is_refused_not_a_crash() {
    let (summary, _jobs) = misbehave("huge-path", "memory: 256Mi");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::StageError, "{message}");
    assert!(message.contains("byte path: refused"), "{message}");
}

/// A stage cannot change or delete what an upstream stage wrote.
#[test]
fn upstream_results_cannot_be_written_or_deleted() {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: upstream
operators:
  - name: upstream
    component: {path: '{components}/misbehave.wasm'}
  - name: victim
    component: {path: '{components}/misbehave.wasm'}
    parameters: {behaviour: write-payload}
    input: [{from: upstream, path: /in}]
",
    );
    let (summary, jobs) = run_pipeline(&pipeline, payload.path(), &[]);
    let upstream = jobs.path().join("job/results/upstream/results");
    let message = summary
        .stage("victim")
        .unwrap()
        .reason
        .as_ref()
        .unwrap()
        .message
        .clone();
    assert!(message.contains("create in /in: refused"), "{message}");
    assert!(
        message.contains("overwrite /in/inventory.json: refused"),
        "{message}"
    );
    assert!(
        message.contains("delete /in/inventory.json: refused"),
        "{message}"
    );
    let inventory = read_json(&upstream.join("inventory.json"));
    assert_eq!(
        inventory["stage"], "upstream",
        "the upstream's file is intact"
    );
    assert!(!upstream.join("planted.txt").exists());
}

/// A stage writing without end is stopped at its results quota, and what it wrote is removed.
#[test]
fn a_stage_filling_the_disk_is_stopped_at_its_quota() {
    let (summary, jobs) = misbehave("fill-disk", "disk: 20Mi");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::DiskQuota, "{message}");
    assert!(message.contains("over its 20 MiB"), "{message}");
    let left = ward::volumes::usage(&[&jobs.path().join("job/results/victim/results")]);
    assert_eq!(left.entries, 0, "the results over quota were removed");
}

/// Too many files fail the stage when it ends, even if it finished before a check.
#[test]
fn a_stage_leaving_too_many_files_fails() {
    let (summary, _jobs) = misbehave("many-files", "files: 1000");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::DiskQuota, "{message}");
    assert!(message.contains("or 1000 entries"), "{message}");
}

/// Runs one `misbehave` stage with job parameters `params` added to its own.
fn misbehave_with(
    behaviour: &str,
    requests: &str,
    params: &[(&str, &str)],
) -> (JobSummary, tempfile::TempDir) {
    let dir = tempdir();
    let payload = small_payload();
    let pipeline = misbehave_pipeline(dir.path(), behaviour, requests);
    run_pipeline(&pipeline, payload.path(), params)
}

fn victim_results(jobs: &tempfile::TempDir) -> std::path::PathBuf {
    jobs.path().join("job/results/victim/results")
}

/// Directories nested past PATH_MAX (25 names of 200 characters, each made inside the last
/// one opened) hide nothing from the quota: what lies at the bottom is counted, the stage
/// fails with `disk-quota`, and none of it is left behind.
#[test]
fn results_nested_past_path_max_are_measured_and_removed() {
    let (summary, jobs) = misbehave("deep-dirs", "disk: 10Mi");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::DiskQuota, "{message}");
    assert!(message.contains("over its 10 MiB"), "{message}");
    assert!(message.contains("its results were removed"), "{message}");
    assert_eq!(
        std::fs::read_dir(victim_results(&jobs)).unwrap().count(),
        0,
        "nothing of the stage is left"
    );
}

/// Nesting deeper than the host walks fails the stage with `disk-quota`, naming the limit,
/// and removes its results, even when they are small.
#[test]
fn results_nested_past_the_depth_limit_fail_and_are_removed() {
    let (summary, jobs) = misbehave_with(
        "deep-dirs",
        "",
        &[("levels", "300"), ("name-length", "4"), ("mb", "1")],
    );
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::DiskQuota, "{message}");
    assert!(
        message.contains(&format!(
            "nest directories deeper than {} levels",
            ward::volumes::MAX_DEPTH
        )),
        "{message}"
    );
    assert!(message.contains("its results were removed"), "{message}");
    assert_eq!(std::fs::read_dir(victim_results(&jobs)).unwrap().count(), 0);
}

/// A file the stage deleted but holds open still takes disk: it counts toward the quota,
/// and once the stage is torn down the host holds nothing of it.
#[test]
fn a_deleted_file_held_open_counts_toward_the_quota() {
    let (summary, jobs) = misbehave("unlinked-file", "disk: 10Mi");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::DiskQuota, "{message}");
    assert!(message.contains("over its 10 MiB"), "{message}");
    assert!(
        message.contains("files it deleted but still holds open"),
        "{message}"
    );
    let results = victim_results(&jobs).canonicalize().unwrap();
    assert_eq!(
        ward::volumes::held_deleted(&[results]).unwrap(),
        ward::volumes::Held::default(),
        "the host still holds the deleted file open"
    );
}

/// Links that each pass a lexical check (`a -> .`, `l1 -> a/..`, `l2 -> l1/..`, …,
/// `secret -> l6/etc/passwd`) but together lead out are found, removed and fail the stage
/// with `escape`; the stage could not read through them.
#[test]
fn a_chain_of_links_leading_out_is_removed() {
    let (summary, jobs) = misbehave("symlink-chain", "");
    let (kind, message) = failure(&summary);
    assert_eq!(kind, FailureKind::Escape, "{message}");
    assert!(
        message.contains("/results/secret -> l6/etc/passwd"),
        "{message}"
    );
    assert!(message.contains("/results/l1 -> a/.."), "{message}");
    let results = victim_results(&jobs);
    for link in ["l1", "l2", "l3", "l4", "l5", "l6", "secret"] {
        assert!(
            std::fs::symlink_metadata(results.join(link)).is_err(),
            "{link} is still there"
        );
    }
    assert!(
        std::fs::symlink_metadata(results.join("a")).is_ok(),
        "a -> . stays"
    );
    let attempts = std::fs::read_to_string(results.join("attempts.txt")).unwrap();
    assert!(attempts.contains("follow secret: refused"), "{attempts}");
}
