//! `ward bench` runs end to end on small sizes (the figures themselves are for a release
//! build; here only that every measurement runs and the sandbox agrees with native code).

use crate::support::*;

#[test]
fn bench_runs_every_measurement() {
    let dir = components_dir().to_str().unwrap().to_string();
    let registry = crate::registry_support::Registry::open();
    let scratch = tempdir();
    let config = crate::registry_support::write_registry_config(scratch.path(), &[&registry]);
    let host = registry.host();
    let model = repo_root().join("examples/ct-ai-segmentation/model/ai-segment.onnx");
    let out = run_ward(&[
        "bench",
        "--inference-model",
        model.to_str().unwrap(),
        "--inference-size",
        "32",
        "--inference-slices",
        "8",
        "--inference-runs",
        "1",
        "--registry",
        &host,
        "--registry-repeats",
        "2",
        "--registry-config",
        config.to_str().unwrap(),
        "--components",
        &dir,
        "--size",
        "48",
        "--slices",
        "12",
        "--repeats",
        "1",
        "--iterations",
        "20",
        "--port-messages",
        "16",
        "--dicom-instances",
        "8",
        "--dicom-size",
        "64",
        "--service-jobs",
        "20",
        "--service-clients",
        "2",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let what: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["what"].as_str().unwrap())
        .collect();
    for needle in [
        "compile segment",
        "instantiate segment, median",
        "trivial 3-stage pipeline end to end, p50",
        "segment 48x48x12 in the sandbox",
        "ports: 16 x 1024 KiB messages between two stages, median",
        "DIMSE ingest of 8 CT 64² instances",
        "job service: 20 trivial jobs from 2 clients, completed",
        "registry: publish segment",
        "registry: pull and verify segment",
        "registry: cold start of segment",
        "inference: ai-segment.onnx on 32x32x8, 2 threads, through wasi:nn, median",
    ] {
        assert!(
            what.iter().any(|w| w.starts_with(needle)),
            "no {needle:?} in {what:?}"
        );
    }
    let segment = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"].as_str().unwrap().starts_with("segment 48x48x12"))
        .unwrap();
    assert_eq!(segment["baseline"][0], "native imaging");
    assert!(segment["value"].as_f64().unwrap() > 0.0);
    let pull = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["what"]
                .as_str()
                .unwrap()
                .starts_with("registry: pull and verify")
        })
        .unwrap();
    let inference = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"].as_str().unwrap().starts_with("inference: "))
        .unwrap();
    assert_eq!(inference["baseline"][0], "onnxruntime in Python");
    assert!(inference["baseline"][1].as_f64().unwrap() > 0.0);
    assert_eq!(pull["baseline"][0], "skopeo copy");
    assert!(pull["baseline"][1].as_f64().unwrap() > 0.0);
}
