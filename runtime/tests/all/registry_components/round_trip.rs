//! Publish → pull of every reference stage, then the CT example with every operator taken
//! from the registry: results byte-identical to the run from local files, and each stage's
//! provenance in summary.json.

use super::*;
use crate::registry_support::{sha256_digest, Registry};

/// The CT example's operators: (component file stem, repository name).
const STAGES: [(&str, &str); 4] = [
    ("dicom_reader", "dicom-reader"),
    ("segment", "segment"),
    ("render", "render"),
    ("dicom_writer", "dicom-writer"),
];

#[test]
fn every_reference_stage_round_trips_and_the_ct_example_runs_from_the_registry() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let mut from_registry = std::fs::read_to_string(&example).unwrap();
    let mut pins = Vec::new();
    for (file, name) in STAGES {
        let wasm = component(file);
        let reference = format!("{}/acme/{name}:1.0", registry.host());
        // Published with conformance: each stage passes it.
        let pinned = bench.publish(&wasm, &reference, &[]);
        let pulled = bench.ward(&[
            "pull",
            &reference,
            "--trust",
            bench.public.to_str().unwrap(),
            "--no-progress",
        ]);
        assert_eq!(pulled.code, 0, "ward pull {reference}: {}", pulled.stderr);
        assert_eq!(
            pulled.stdout.lines().next(),
            Some(pinned.as_str()),
            "{}",
            pulled.stdout
        );
        let stored = pulled
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("component: "))
            .expect("ward pull names the stored file");
        assert_eq!(
            std::fs::read(stored).unwrap(),
            std::fs::read(&wasm).unwrap(),
            "{name}: the pulled component is the published file"
        );
        let (_, digest) = split_pinned(&pinned);
        from_registry = from_registry.replace(
            &format!("path: ../../guests/target/wasm32-wasip2/release/{file}.wasm"),
            &format!("ref: '{reference}'\n      digest: {digest}"),
        );
        pins.push((
            name,
            reference,
            digest.to_string(),
            sha256_digest(&std::fs::read(&wasm).unwrap()),
        ));
    }
    assert!(
        !from_registry.contains("path: ../"),
        "every operator is a registry reference:\n{from_registry}"
    );

    let dir = tempdir();
    let payload = dir.path().join("payload");
    let sample = run_ward(&["sample", "ct", "--out", payload.to_str().unwrap()]);
    assert_eq!(sample.code, 0, "{}", sample.stderr);
    let local_job = dir.path().join("local");
    let local = ward_run(
        &example,
        &payload,
        &["--results", local_job.to_str().unwrap(), "--no-progress"],
    );
    assert_eq!(local.code, 0, "the local run: {}", local.stderr);

    let pipeline = dir.path().join("from-registry.yaml");
    std::fs::write(&pipeline, &from_registry).unwrap();
    let registry_job = dir.path().join("registry");
    let out = bench.ward(&[
        "run",
        pipeline.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--results",
        registry_job.to_str().unwrap(),
        "--no-progress",
        "--trust",
        bench.public.to_str().unwrap(),
        "--require-conformance",
    ]);
    assert_eq!(
        out.code, 0,
        "the run from the registry: {}{}",
        out.stdout, out.stderr
    );
    let local_results = tree_files(&local_job.join("results"));
    assert!(local_results.len() >= 4, "{:?}", local_results.keys());
    assert!(
        local_results == tree_files(&registry_job.join("results")),
        "results from registry components differ from the local run"
    );

    let summary = read_json(&registry_job.join("summary.json"));
    for (name, reference, manifest, layer) in &pins {
        let stage = summary["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == *name)
            .unwrap_or_else(|| panic!("{name} in summary.json"));
        let p = &stage["provenance"];
        assert_eq!(p["reference"], reference.as_str(), "{stage}");
        assert_eq!(p["manifest_digest"], manifest.as_str(), "{stage}");
        assert_eq!(p["signer"], bench.fingerprint.as_str(), "{stage}");
        assert_eq!(p["conformance"], "pass", "{stage}");
        assert_eq!(stage["digest"], layer.as_str(), "{stage}");
    }
    // The local run names no provenance: its components are files.
    let local_summary = read_json(&local_job.join("summary.json"));
    assert!(local_summary["stages"][0].get("provenance").is_none());
}

#[test]
fn publishing_over_tls_with_basic_auth_and_docker_credentials() {
    let secure = Registry::with_auth_tls();
    let bench = Bench::new(&[&secure]);
    let reference = format!("{}/acme/segment:2.0", secure.host());
    let pinned = bench.publish(&component("segment"), &reference, &["--skip-conformance"]);
    let (_, digest) = split_pinned(&pinned);

    // The same registry with the credentials in a docker config.json instead of Ward's file.
    let (user, password) = secure.credentials().unwrap();
    let docker = bench.dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"auths": {secure.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let ca_only = bench.dir.path().join("ca-only.yaml");
    std::fs::write(
        &ca_only,
        format!(
            "registries:\n  \"{}\":\n    ca: \"{}\"\n",
            secure.host(),
            secure.ca_pem().unwrap().display()
        ),
    )
    .unwrap();
    let out = ward()
        .env("DOCKER_CONFIG", &docker)
        .args(["verify", &pinned, "--key", bench.public.to_str().unwrap()])
        .args(["--registry-config", ca_only.to_str().unwrap()])
        .args(["--store", bench.dir.path().join("store2").to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("verified {reference}@{digest}")),
        "{stdout}"
    );
    assert!(stdout.contains("conformance: skipped"), "{stdout}");
}
