//! Components that are not stages are refused when loaded, before anything runs, with the
//! pipeline location, the operator and what is wrong.

use crate::support::*;
use std::path::Path;

/// A one-operator pipeline whose component is `component`.
fn pipeline_with(dir: &Path, component: &Path, digest: Option<&str>) -> std::path::PathBuf {
    let digest = digest
        .map(|d| format!(", digest: '{d}'"))
        .unwrap_or_default();
    write_pipeline(
        dir,
        &format!(
            "api-version: 0.1
name: check
operators:
  - name: victim
    component: {{path: '{}'{digest}}}
",
            component.display()
        ),
    )
}

fn validate(component: &Path, digest: Option<&str>) -> Output {
    let dir = tempdir();
    let pipeline = pipeline_with(dir.path(), component, digest);
    run_ward(&["validate", pipeline.to_str().unwrap()])
}

fn expect_refused(out: &Output, needle: &str) {
    assert_eq!(
        out.code, 2,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr
            .contains("pipeline.yaml:5:16: operator 'victim':"),
        "location and operator: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "expected {needle:?} in: {}",
        out.stderr
    );
}

#[test]
fn a_file_that_is_not_wasm() {
    let dir = tempdir();
    let file = dir.path().join("stage.wasm");
    std::fs::write(&file, "#!/bin/sh\necho not wasm\n").unwrap();
    expect_refused(&validate(&file, None), "not a WebAssembly file");
}

#[test]
fn a_core_module_instead_of_a_component() {
    let dir = tempdir();
    let file = dir.path().join("module.wasm");
    std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
    expect_refused(
        &validate(&file, None),
        "a core WebAssembly module, not a component",
    );
}

#[test]
fn a_broken_component() {
    let dir = tempdir();
    let file = dir.path().join("broken.wasm");
    std::fs::write(&file, b"\0asm\x0d\0\x01\0\xff\xff\xff").unwrap();
    expect_refused(&validate(&file, None), "not a valid component");
}

#[test]
fn a_component_of_another_world() {
    let out = validate(&component("not-a-stage"), None);
    expect_refused(
        &out,
        "does not target ward:stage/stage: it exports no `run` function",
    );
    assert!(
        out.stderr.contains("wasi:cli/run@0.2"),
        "it says what the component does export: {}",
        out.stderr
    );
}

#[test]
fn imports_ward_does_not_grant_are_refused_by_name() {
    let dir = tempdir();
    for (import, why) in [
        ("wasi:sockets/tcp@0.2.0", "stages have no network access"),
        (
            "wasi:http/outgoing-handler@0.2.0",
            "not part of the ward:stage world",
        ),
        (
            "acme:evil/backdoor@1.0.0",
            "not part of the ward:stage world",
        ),
        ("ward:stage/context@9.0.0", "built against ward:stage@9.0.0"),
    ] {
        let file = dir.path().join("importer.wat");
        std::fs::write(
            &file,
            format!("(component (import \"{import}\" (instance)))"),
        )
        .unwrap();
        let out = validate(&file, None);
        expect_refused(
            &out,
            &format!("imports `{import}`, which Ward does not grant to stages: "),
        );
        assert!(out.stderr.contains(why), "{}", out.stderr);
    }
}

#[test]
fn a_pinned_digest_must_match() {
    let segment = component("segment");
    let bytes = std::fs::read(&segment).unwrap();
    let actual = ward::engine::sha256_digest(&bytes);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = validate(&segment, Some(&wrong));
    expect_refused(
        &out,
        &format!("digest is {actual}, but the pipeline pins {wrong}"),
    );
    let ok = validate(&segment, Some(&actual));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stdout.contains("valid (1 operators)"), "{}", ok.stdout);
}

#[test]
fn inspect_shows_the_world_of_a_stage() {
    let out = run_ward(&["inspect", component("segment").to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("ward:stage/context@0.2.0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("run (func)"), "{}", out.stdout);
    assert!(out.stdout.contains("stage:     yes"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("wasi:sockets"),
        "reference stages use no network: {}",
        out.stdout
    );

    let out = run_ward(&[
        "inspect",
        "--json",
        component("not-a-stage").to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(json["stage_error"]
        .as_str()
        .unwrap()
        .contains("exports no `run`"));
    assert!(json["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn a_cycle_is_refused_before_anything_runs() {
    let dir = tempdir();
    let pipeline = write_pipeline(
        dir.path(),
        "api-version: 0.1
name: cycle
operators:
  - name: a
    component: {path: '{components}/misbehave.wasm'}
    input: [{from: b, path: /in}]
  - name: b
    component: {path: '{components}/misbehave.wasm'}
    input: [{from: a, path: /in}]
",
    );
    let payload = small_payload();
    let jobs = tempdir();
    let job = jobs.path().join("job");
    let out = ward_run(
        &pipeline,
        payload.path(),
        &["--results", job.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pipeline.yaml:4:11: operator 'a': the operators form a cycle: a -> b -> a")
            || out
                .stderr
                .contains("operator 'b': the operators form a cycle: b -> a -> b"),
        "{}",
        out.stderr
    );
    assert!(!job.exists(), "nothing ran");
}
