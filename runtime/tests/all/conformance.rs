//! `ward conformance`: the reference stages pass; components that trap, hit a limit, give
//! different results on two runs, or are not stages fail with the reason.

use crate::support::*;

fn conformance(component: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let path = crate::support::component(component);
    let mut args = vec!["conformance", "--json", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run_ward(&args);
    let report = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr));
    (out.code, report)
}

fn failed_checks(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_reference_stages_pass() {
    for stage in [
        "dicom-reader",
        "segment",
        "render",
        "dicom-writer",
        "smooth",
        "assemble",
        "misbehave",
    ] {
        let (code, report) = conformance(stage, &[]);
        assert_eq!(code, 0, "{stage}: {:?}", failed_checks(&report));
        assert_eq!(report["passed"], true);
        assert_eq!(
            report["checks"].as_array().unwrap().len(),
            10,
            "world + 3 checks on each of 3 payloads"
        );
    }
    // The reader does its job on the CT series, and reports its time and memory.
    let (_, report) = conformance("dicom-reader", &[]);
    let ends = &report["checks"][1];
    assert_eq!(ends["name"], "ct-series: ends");
    assert!(
        ends["detail"].as_str().unwrap().starts_with("succeeded"),
        "{ends}"
    );
    assert!(ends["figures"]["memory_peak_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn misbehaving_components_fail_with_their_reason() {
    for (behaviour, extra, check, reason) in [
        ("panic", &[][..], "ct-series: ends", "trap: "),
        ("trap", &[][..], "ct-series: ends", "trap: "),
        ("exit", &[][..], "ct-series: ends", "exit: "),
        ("recurse", &[][..], "ct-series: ends", "trap: "),
        (
            "recurse-native",
            &[][..],
            "ct-series: ends",
            "stack-overflow: ",
        ),
        (
            "oom",
            &["--memory", "64Mi"][..],
            "ct-series: ends",
            "memory-limit: ",
        ),
        (
            "spin",
            &["--timeout", "300ms"][..],
            "ct-series: ends",
            "deadline: ",
        ),
        (
            "sleep",
            &["--timeout", "300ms", "--param", "sleep-ms=600000"][..],
            "ct-series: ends",
            "deadline: ",
        ),
        (
            "block-on-port",
            &["--timeout", "300ms"][..],
            "ct-series: ends",
            "deadline: ",
        ),
        ("escape", &[][..], "ct-series: ends", "escape: "),
        ("open-files", &[][..], "ct-series: ends", "handle-limit: "),
        (
            "fill-disk",
            &["--disk", "20Mi"][..],
            "ct-series: ends",
            "disk-quota: ",
        ),
        (
            "many-files",
            &["--files", "1000"][..],
            "ct-series: ends",
            "disk-quota: ",
        ),
        (
            "write-payload",
            &[][..],
            "ct-series: ends",
            "failed on a valid payload: write attempts",
        ),
        (
            "random",
            &[][..],
            "ct-series: deterministic",
            "files that differ between two runs: random.txt",
        ),
    ] {
        let param = format!("behaviour={behaviour}");
        let mut args = vec!["--param", param.as_str()];
        args.extend_from_slice(extra);
        let (code, report) = conformance("misbehave", &args);
        assert_eq!(code, 1, "{behaviour}");
        let failed = failed_checks(&report);
        let found = failed.iter().find(|(name, _)| name == check);
        assert!(
            found.is_some_and(|(_, detail)| detail.starts_with(reason)),
            "{behaviour}: {failed:#?}"
        );
    }
}

#[test]
fn a_component_of_another_world_fails_the_world_check() {
    let (code, report) = conformance("not-a-stage", &[]);
    assert_eq!(code, 1);
    let failed = failed_checks(&report);
    assert_eq!(failed.len(), 1, "nothing runs after the world check fails");
    assert_eq!(failed[0].0, "world");
    assert!(
        failed[0].1.contains("exports no `run` function"),
        "{failed:?}"
    );
}
