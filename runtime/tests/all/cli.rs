//! The `ward` command line: exit codes, messages, and what it writes.

use crate::support::*;

#[test]
fn sample_ct_writes_a_series_dcmtk_reads() {
    let dir = tempdir();
    let out_dir = dir.path().join("ct");
    let out = run_ward(&[
        "sample",
        "ct",
        "--out",
        out_dir.to_str().unwrap(),
        "--slices",
        "4",
        "--size",
        "32",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("wrote 4 CT slices of 32x32"),
        "{}",
        out.stdout
    );
    let mut files: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 4);
    for f in &files {
        let dump = dcmdump(&["+E", f.to_str().unwrap()]);
        assert_eq!(dump.code, 0, "{}", dump.stderr);
        assert!(
            !dump.stderr.contains("W:") && !dump.stderr.contains("E:"),
            "{}",
            dump.stderr
        );
        assert!(dump.stdout.contains("=CTImageStorage"), "{}", dump.stdout);
    }
}

#[test]
fn a_failed_job_exits_1_and_says_why() {
    let dir = tempdir();
    let pipeline = misbehave_pipeline(dir.path(), "panic", "");
    let payload = small_payload();
    let job = dir.path().join("job");
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--results", job.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(out.stdout.contains("deliberate panic"), "{}", out.stdout);
    let summary = read_json(&job.join("summary.json"));
    assert_eq!(summary["stages"][0]["reason"]["kind"], "trap");
}

#[test]
fn bad_invocations_exit_2_and_touch_nothing() {
    let dir = tempdir();
    let pipeline = misbehave_pipeline(dir.path(), "ok", "");
    let missing = dir.path().join("no-such-payload");
    let out = ward_run(&pipeline, &missing, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("no-such-payload: the payload is not a directory"),
        "{}",
        out.stderr
    );

    // A job directory that already holds something is never overwritten.
    let payload = small_payload();
    let job = dir.path().join("existing");
    std::fs::create_dir(&job).unwrap();
    std::fs::write(job.join("keep.txt"), "precious").unwrap();
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--results", job.to_str().unwrap()],
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("already exists and is not empty"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(job.join("keep.txt")).unwrap(),
        "precious"
    );

    let out = ward_run(&pipeline, payload.path(), &["--param", "novalue"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("'novalue' is not KEY=VALUE"),
        "{}",
        out.stderr
    );

    let out = run_ward(&["validate", dir.path().join("nope.yaml").to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("nope.yaml: cannot read the pipeline file"),
        "{}",
        out.stderr
    );
}

#[test]
fn datasets_are_mounted_read_only_by_name() {
    let dir = tempdir();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: with-dataset
operators:
  - name: victim
    component: {path: '{components}/misbehave.wasm'}
    input: [{dataset: atlas, path: /atlas}]
",
    );
    let payload = small_payload();
    let atlas = tempdir();
    std::fs::write(atlas.path().join("atlas.raw"), [0u8; 16]).unwrap();
    let job = dir.path().join("job");
    let without = ward_run(&pipeline, payload.path(), &[]);
    assert_eq!(without.code, 2);
    assert!(
        without.stderr.contains(
            "operator 'victim': dataset 'atlas' was not given (pass --dataset atlas=DIR)"
        ),
        "{}",
        without.stderr
    );
    let dataset = format!("atlas={}", atlas.path().display());
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--dataset", &dataset, "--results", job.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let inventory = read_json(&job.join("results/victim/results/inventory.json"));
    assert_eq!(inventory["volumes"][0]["kind"], "dataset");
    assert_eq!(inventory["volumes"][0]["source"], "atlas");
    assert_eq!(inventory["volumes"][0]["read_only"], true);
    assert_eq!(inventory["volumes"][0]["files"], 1);
}

/// `ward token hash` reads the token from standard input (never the command line) and
/// prints what the example configuration's `sha256` holds for its demo token.
#[test]
fn token_hash_reads_the_token_from_standard_input() {
    use std::io::Write;
    let hash = |input: &[u8]| {
        let mut child = ward()
            .args(["token", "hash"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = hash(b"radiology-demo-token\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let example = std::fs::read_to_string(repo_root().join("examples/serve/serve.yaml")).unwrap();
    assert!(
        example.contains(&format!("sha256: {printed}")),
        "{printed} is not the example's demo token hash"
    );
    let empty = hash(b"");
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no token on standard input"));
}

#[test]
fn run_and_validate_print_json_with_the_flag() {
    let dir = tempdir();
    let pipeline = misbehave_pipeline(dir.path(), "ok", "");
    let payload = small_payload();
    let job = dir.path().join("job");
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--results", job.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["stages"][0]["name"], "victim");
    assert_eq!(
        summary["job_id"],
        read_json(&job.join("summary.json"))["job_id"],
        "the summary of the job that ran"
    );

    let out = run_ward(&["validate", pipeline.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let verdict: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(verdict["valid"], true, "{verdict}");
    assert_eq!(verdict["operators"][0]["name"], "victim");
    assert!(verdict["operators"][0]["digest"].is_string(), "{verdict}");

    // A component that is there but is no component.
    let junk = tempdir();
    std::fs::write(junk.path().join("ghost.wasm"), b"not wasm").unwrap();
    let missing = write_pipeline(
        junk.path(),
        "api-version: 0.1
name: junk
operators:
  - name: ghost
    component:
      path: ghost.wasm
    input:
      - path: /payload
",
    );
    let out = run_ward(&["validate", missing.to_str().unwrap(), "--json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let verdict: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(verdict["valid"], false, "{verdict}");
    let error = verdict["operators"][0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("operator 'ghost'"), "{verdict}");

    let out = run_ward(&[
        "validate",
        dir.path().join("nope.yaml").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.code, 2);
    let verdict: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(verdict["valid"], false);
    assert!(
        verdict["error"]
            .as_str()
            .unwrap()
            .contains("cannot read the pipeline file"),
        "{verdict}"
    );
}
