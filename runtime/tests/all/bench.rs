//! `ward bench` runs end to end on small sizes (the figures themselves are for a release
//! build; here only that every measurement runs, the sandbox agrees with native code, and
//! the report holds rounds, spreads and goals and compares with an earlier one).

use crate::support::*;

#[test]
fn bench_runs_every_measurement() {
    let dir = components_dir().to_str().unwrap().to_string();
    let registry = crate::registry_support::Registry::open();
    let scratch = tempdir();
    let config = crate::registry_support::write_registry_config(scratch.path(), &[&registry]);
    let host = registry.host();
    let model = repo_root().join("examples/ct-ai-segmentation/model/ai-segment.onnx");
    let report_path = scratch.path().join("report.json");
    let out = run_ward(&[
        "bench",
        "--rounds",
        "2",
        "--instructions",
        "--instructions-size",
        "16",
        "--instructions-slices",
        "4",
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
        report_path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["rounds"], 2);
    let rows = &report["figures"];
    let what: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["what"].as_str().unwrap())
        .collect();
    // Every figure is min <= median <= max over the rounds, and the table says so.
    for r in rows.as_array().unwrap() {
        let v = &r["value"];
        let (min, median, max) = (
            v["min"].as_f64().unwrap(),
            v["median"].as_f64().unwrap(),
            v["max"].as_f64().unwrap(),
        );
        assert!(min <= median && median <= max, "{r}");
    }
    assert!(
        out.stdout.contains("figure (2 interleaved rounds)"),
        "{}",
        out.stdout
    );
    for needle in [
        "compile segment",
        "instantiate segment, median",
        "trivial 3-stage job end to end",
        "segment 48x48x12 in the sandbox",
        "ports: 16 x 1024 KiB messages between two stages, median",
        "DIMSE ingest of 8 CT 64² instances",
        "job service: 20 trivial jobs from 2 clients, completed",
        "registry: publish segment",
        "registry: pull and verify segment",
        "registry: cold start of segment",
        "inference: ai-segment.onnx on 32x32x8, 2 threads, through wasi:nn, median",
        "segment 16x16x4 whole stage, instructions",
        "    labelling, median",
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
    assert_eq!(segment["baseline"]["what"], "native imaging");
    assert!(segment["value"]["median"].as_f64().unwrap() > 0.0);
    // Its ratio is taken round by round, and its goal is judged.
    assert!(segment["ratio"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(segment["goal"]["ratio-at-most"], 1.1);
    assert!(segment["met"].is_boolean());
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
    assert_eq!(inference["baseline"]["what"], "onnxruntime in Python");
    assert!(inference["baseline"]["value"]["median"].as_f64().unwrap() > 0.0);
    assert_eq!(pull["baseline"]["what"], "skopeo copy");
    assert!(pull["baseline"]["value"]["median"].as_f64().unwrap() > 0.0);
    let instructions = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["what"].as_str().unwrap().contains("instructions"))
        .unwrap();
    assert!(instructions["value"]["median"].as_f64().unwrap() > 0.0);
    assert!(
        instructions["baseline"]["value"]["median"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // A later run compares its medians with the report.
    let again = run_ward(&[
        "bench",
        "--rounds",
        "1",
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
        "0",
        "--service-jobs",
        "0",
        "--render-slices",
        "0",
        "--inference-runs",
        "0",
        "--compare",
        report_path.to_str().unwrap(),
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("change of the medians against the earlier report"),
        "{}",
        again.stdout
    );
    let line = again
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("change of the medians"))
        .find(|l| l.starts_with("segment 48x48x12 in the sandbox"))
        .unwrap_or_else(|| panic!("no comparison of the segment figure: {}", again.stdout));
    assert!(line.contains("->") && line.contains('%'), "{line}");
    assert!(
        again.stdout.contains("not measured this time"),
        "{}",
        again.stdout
    );

    // A file that is not a report is refused before anything is measured, naming it.
    let bad = scratch.path().join("bad.json");
    std::fs::write(&bad, "{\"rows\": []}").unwrap();
    let refused = run_ward(&["bench", "--compare", bad.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("bad.json")
            && refused.stderr.contains("not a `ward bench --json` report"),
        "{}",
        refused.stderr
    );
}
