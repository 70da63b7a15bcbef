//! What other implementations make of Ward's artifacts, and Ward of theirs: skopeo reads the
//! manifest Ward pushed; Python's `cryptography` verifies Ward's signature over the
//! simple-signing payload; a component pushed to the layout's description and signed by the
//! Python scripts (`runtime/tests/registry/`) is verified and run by Ward.

use super::*;
use crate::registry_support::{
    cosign_genkey, cosign_verify, push_signature, sha256_digest, signature_tag, spec_push, Registry,
};
use serde_json::Value;

#[test]
fn skopeo_reads_the_artifact_ward_pushed_with_the_layouts_media_types() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let wasm = component("segment");
    let reference = format!("{}/acme/segment:1.0", registry.host());
    let pinned = bench.publish(&wasm, &reference, &[]);
    let (_, digest) = split_pinned(&pinned);

    let raw = registry.skopeo_manifest("acme/segment:1.0");
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "the digest Ward printed is the manifest's"
    );
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let layer_digest = sha256_digest(&std::fs::read(&wasm).unwrap());
    assert_eq!(layers[0]["digest"], layer_digest.as_str());
    let annotations = &manifest["annotations"];
    assert_eq!(
        annotations["dev.ward.stage.contract"],
        ward::engine::CONTRACT_VERSION_TEXT
    );
    assert_eq!(annotations["org.opencontainers.image.vendor"], "acme");
    assert_eq!(annotations["dev.ward.conformance.verdict"], "pass");

    let config: Value =
        serde_json::from_slice(&registry.skopeo_config("acme/segment:1.0")).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"], serde_json::json!([layer_digest]));
    let imports: Vec<&str> = config["component"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        imports.iter().any(|i| i.starts_with("ward:stage/context@")),
        "{imports:?}"
    );
    assert!(
        config["component"]["exports"].to_string().contains("run"),
        "{config}"
    );

    // The report beside it is the conformance verdict whose digest the manifest carries.
    let report_digest = annotations["dev.ward.conformance.digest"].as_str().unwrap();
    let conformance_tag = format!("{}.conformance", digest.replacen(':', "-", 1));
    let report = registry.skopeo_blob(&format!("acme/segment:{conformance_tag}"), report_digest);
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["digest"], layer_digest.as_str());
    let report_manifest =
        sha256_digest(&registry.skopeo_manifest(&format!("acme/segment:{conformance_tag}")));
    let report_signatures: Value = serde_json::from_slice(
        &registry.skopeo_manifest(&format!("acme/segment:{}", signature_tag(&report_manifest))),
    )
    .unwrap();
    assert_eq!(
        report_signatures["layers"][0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "the report's manifest is signed too"
    );

    let signatures: Value = serde_json::from_slice(
        &registry.skopeo_manifest(&format!("acme/segment:{}", signature_tag(digest))),
    )
    .unwrap();
    let layer = &signatures["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    assert!(layer["annotations"]["dev.cosignproject.cosign/signature"].is_string());
}

#[test]
fn wards_signature_verifies_with_an_independent_implementation() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let pinned = bench.publish(
        &component("segment"),
        &format!("{}/acme/segment:1.0", registry.host()),
        &["--skip-conformance"],
    );
    let (_, digest) = split_pinned(&pinned);
    let sig_ref = format!("acme/segment:{}", signature_tag(digest));
    let signatures: Value = serde_json::from_slice(&registry.skopeo_manifest(&sig_ref)).unwrap();
    let layer = &signatures["layers"][0];
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    let payload = registry.skopeo_blob(&sig_ref, layer["digest"].as_str().unwrap());
    let file = bench.dir.path().join("payload.json");
    std::fs::write(&file, &payload).unwrap();

    let good = cosign_verify(&bench.public, &file, signature, Some(digest));
    assert_eq!(
        good.code, 0,
        "Python rejects Ward's signature: {}{}",
        good.stdout, good.stderr
    );

    let other_digest = format!("sha256:{}", "0".repeat(64));
    let wrong_digest = cosign_verify(&bench.public, &file, signature, Some(&other_digest));
    assert_ne!(
        wrong_digest.code, 0,
        "the payload names the manifest it signs"
    );
    let (_, other_public, _) = generate_key(bench.dir.path(), "other");
    assert_ne!(cosign_verify(&other_public, &file, signature, None).code, 0);
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("acme/segment", "acme/segmenT");
    std::fs::write(&file, edited).unwrap();
    assert_ne!(cosign_verify(&bench.public, &file, signature, None).code, 0);
}

#[test]
fn an_artifact_built_and_signed_by_independent_scripts_runs_in_ward() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let (python_key, python_public) = cosign_genkey(bench.dir.path(), "vendor");
    let wasm = component("dicom_reader");
    let digest = spec_push(
        &registry,
        "vendor/dicom-reader",
        "3.1",
        &wasm,
        &["--annotation", "org.opencontainers.image.vendor=Vendor"],
    );
    push_signature(&registry, "vendor/dicom-reader", &digest, &python_key, &[]);

    let dir = tempdir();
    let payload = dir.path().join("payload");
    assert_eq!(
        run_ward(&["sample", "ct", "--out", payload.to_str().unwrap()]).code,
        0
    );
    let reference = format!("{}/vendor/dicom-reader:3.1", registry.host());
    let pipeline = one_stage_pipeline(dir.path(), &reference, &digest);
    let job = dir.path().join("job");
    let out = bench.ward(&[
        "run",
        pipeline.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--results",
        job.to_str().unwrap(),
        "--no-progress",
        "--trust",
        python_public.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let summary = read_json(&job.join("summary.json"));
    let provenance = &summary["stages"][0]["provenance"];
    assert_eq!(provenance["manifest_digest"], digest.as_str());
    assert_eq!(provenance["vendor"], "Vendor");
    assert_eq!(
        provenance["conformance"], "none",
        "the scripts publish no verdict"
    );
    assert_eq!(
        summary["stages"][0]["digest"],
        sha256_digest(&std::fs::read(&wasm).unwrap()).as_str()
    );

    // The same artifact is refused with Ward's key: Python's key signed it.
    let refused = bench.ward(&[
        "verify",
        &format!("{reference}@{digest}"),
        "--key",
        bench.public.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("signature check failed"),
        "{}",
        refused.stderr
    );
}
