//! Registry components Ward must refuse, each with a message naming the check that failed,
//! before anything is compiled (the run's compile cache stays empty) or run (no job
//! directory): a key not trusted, an edited payload, a payload naming another manifest, a
//! swapped layer, a manifest that does not hash to its pin, no signature at all, a
//! conformance verdict required but skipped, wrong credentials, an unreachable registry.
//! Also: a component failing conformance is not published, and a moved tag does not move a pin.

use super::*;
use crate::registry_support::{cosign_genkey, push_signature, signature_tag, spec_push, Registry};
use ward::registry::artifact::{Descriptor, Manifest};

/// A registry holding `acme/dicom-reader:1.0`, published and signed by the bench's key.
struct Published {
    registry: Registry,
    bench: Bench,
    reference: String,
    digest: String,
}

fn published(extra: &[&str]) -> Published {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let reference = format!("{}/acme/dicom-reader:1.0", registry.host());
    let pinned = bench.publish(&component("dicom_reader"), &reference, extra);
    let digest = split_pinned(&pinned).1.to_string();
    Published {
        registry,
        bench,
        reference,
        digest,
    }
}

/// Runs a one-stage pipeline of `reference@digest` trusting `keys`, with a fresh store and
/// compile cache; asserts it was refused (exit 2) before compiling or running, and returns
/// its standard error.
fn refused_run(bench: &Bench, reference: &str, digest: &str, extra: &[&str]) -> String {
    let dir = tempdir();
    let pipeline = one_stage_pipeline(dir.path(), reference, digest);
    let payload = small_payload();
    let job = dir.path().join("job");
    let cache = dir.path().join("cache");
    let store = dir.path().join("store");
    let out = ward()
        .env("WARD_CACHE_DIR", &cache)
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--payload",
            payload.path().to_str().unwrap(),
        ])
        .args(["--results", job.to_str().unwrap(), "--no-progress"])
        .args(["--registry-config", bench.config.to_str().unwrap()])
        .args(["--store", store.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "not refused: {stderr}");
    assert!(
        !job.exists(),
        "a refused job has no job directory: {stderr}"
    );
    let compiled = cache.exists() && walk_files(&cache) > 0;
    assert!(
        !compiled,
        "something was compiled before the refusal: {stderr}"
    );
    assert!(
        stderr.contains("pipeline.yaml:"),
        "the refusal is placed in the pipeline: {stderr}"
    );
    assert!(stderr.contains("operator 'stage'"), "{stderr}");
    stderr
}

fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { walk_files(&p) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

fn trust(key: &std::path::Path) -> [&str; 2] {
    ["--trust", key.to_str().unwrap()]
}

/// Ward's own registry client on the bench's configuration, to put tampered things in place.
fn client(bench: &Bench) -> ward::registry::Registry {
    let config = ward::registry::RegistryConfig::load(&bench.config).unwrap();
    ward::registry::Registry::new(config).unwrap()
}

fn at_tag(p: &Published, tag: &str) -> oci_client::Reference {
    format!("{}/acme/dicom-reader:{tag}", p.registry.host())
        .parse()
        .unwrap()
}

#[test]
fn untrusted_and_missing_keys_are_refused_at_the_signature_check() {
    let p = published(&["--skip-conformance"]);
    let (_, other, other_fingerprint) = generate_key(p.bench.dir.path(), "other");
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &trust(&other));
    assert!(stderr.contains("signature check failed"), "{stderr}");
    assert!(
        stderr.contains(&other_fingerprint),
        "names the keys tried: {stderr}"
    );
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &[]);
    assert!(stderr.contains("no trusted keys"), "{stderr}");
}

#[test]
fn an_edited_payload_and_a_payload_for_another_manifest_are_refused() {
    let p = published(&["--skip-conformance"]);
    let registry = client(&p.bench);
    let sig_tag = signature_tag(&p.digest);
    let (bytes, _) = registry.pull_manifest(&at_tag(&p, &sig_tag)).unwrap();
    let mut manifest = Manifest::parse(&bytes).unwrap();
    let layer = manifest.layers[0].clone();
    let payload = registry
        .pull_blob(&at_tag(&p, &sig_tag), &layer.digest, &|_| {})
        .unwrap();
    // The same signature over a payload with one field changed.
    let edited = String::from_utf8(payload)
        .unwrap()
        .replace("acme/dicom-reader", "acme/dicom-writer");
    registry
        .push_blob(&at_tag(&p, &sig_tag), edited.as_bytes(), &|_| {})
        .unwrap();
    let mut tampered = Descriptor::of(&layer.media_type, edited.as_bytes());
    tampered.annotations = layer.annotations.clone();
    manifest.layers = vec![tampered];
    registry
        .push_manifest(&at_tag(&p, &sig_tag), &manifest.to_bytes())
        .unwrap();
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &trust(&p.bench.public));
    assert!(stderr.contains("signature check failed"), "{stderr}");
    assert!(
        stderr.contains("verifies against the trusted keys"),
        "{stderr}"
    );

    // A valid signature by a trusted key, over a payload naming a different manifest.
    let (python_key, python_public) = cosign_genkey(p.bench.dir.path(), "python");
    let other = format!("sha256:{}", "1".repeat(64));
    push_signature(
        &p.registry,
        "acme/dicom-reader",
        &p.digest,
        &python_key,
        &["--payload-digest", &other],
    );
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &trust(&python_public));
    assert!(stderr.contains("signature check failed"), "{stderr}");
    assert!(
        stderr.contains(&format!("names manifest {other}")),
        "{stderr}"
    );
}

#[test]
fn a_swapped_layer_and_a_manifest_that_is_not_its_pin_are_refused() {
    let p = published(&["--skip-conformance"]);
    let layer = ward::registry::sha256_digest(&std::fs::read(component("dicom_reader")).unwrap());
    // The registry now serves other bytes (of the same length) under the layer's digest.
    let file = p.registry.blob_file(&layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &trust(&p.bench.public));
    assert!(stderr.contains("layer digest check failed"), "{stderr}");

    // And other bytes under the manifest's digest.
    let file = p.registry.blob_file(&p.digest);
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"schemaVersion\":2", "\"schemaVersion\":2 ");
    std::fs::write(&file, text).unwrap();
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &trust(&p.bench.public));
    assert!(stderr.contains("manifest digest check failed"), "{stderr}");
    assert!(stderr.contains(&format!("pinned {}", p.digest)), "{stderr}");
}

#[test]
fn an_unsigned_component_and_a_skipped_conformance_are_refused() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let digest = spec_push(
        &registry,
        "acme/unsigned",
        "1",
        &component("dicom_reader"),
        &[],
    );
    let reference = format!("{}/acme/unsigned:1", registry.host());
    let stderr = refused_run(&bench, &reference, &digest, &trust(&bench.public));
    assert!(
        stderr.contains("signature check failed: no signature"),
        "{stderr}"
    );
    assert!(stderr.contains(&signature_tag(&digest)), "{stderr}");

    let p = published(&["--skip-conformance"]);
    let mut args = trust(&p.bench.public).to_vec();
    args.push("--require-conformance");
    let stderr = refused_run(&p.bench, &p.reference, &p.digest, &args);
    assert!(stderr.contains("conformance check failed"), "{stderr}");
    assert!(stderr.contains("--skip-conformance"), "{stderr}");
}

#[test]
fn a_component_failing_conformance_is_not_published() {
    let registry = Registry::open();
    let bench = Bench::new(&[&registry]);
    let reference = format!("{}/acme/misbehave:1", registry.host());
    let out = bench.ward(&[
        "publish",
        component("misbehave").to_str().unwrap(),
        &reference,
        "--key",
        bench.key.to_str().unwrap(),
        "--param",
        "behaviour=random",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("ward conformance failed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("deterministic"),
        "names the failed check: {}",
        out.stderr
    );
    let pulled = bench.ward(&[
        "pull",
        &reference,
        "--trust",
        bench.public.to_str().unwrap(),
        "--registry-attempts",
        "1",
    ]);
    assert_ne!(pulled.code, 0);
    assert!(
        pulled.stderr.contains("not found"),
        "nothing was pushed: {}",
        pulled.stderr
    );
}

#[test]
fn a_moved_tag_does_not_move_a_pin() {
    let p = published(&["--skip-conformance"]);
    // The tag now names another component, signed by the same vendor.
    let moved = p
        .bench
        .publish(&component("segment"), &p.reference, &["--skip-conformance"]);
    assert_ne!(split_pinned(&moved).1, p.digest);
    let dir = tempdir();
    let payload = dir.path().join("payload");
    assert_eq!(
        run_ward(&["sample", "ct", "--out", payload.to_str().unwrap()]).code,
        0
    );
    let pipeline = one_stage_pipeline(dir.path(), &p.reference, &p.digest);
    let job = dir.path().join("job");
    let out = p.bench.ward(&[
        "run",
        pipeline.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--results",
        job.to_str().unwrap(),
        "--no-progress",
        "--trust",
        p.bench.public.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stage = &read_json(&job.join("summary.json"))["stages"][0];
    assert_eq!(stage["provenance"]["manifest_digest"], p.digest.as_str());
    let reader = ward::registry::sha256_digest(&std::fs::read(component("dicom_reader")).unwrap());
    assert_eq!(
        stage["digest"],
        reader.as_str(),
        "the pinned component ran, not the tag's"
    );
}

#[test]
fn wrong_credentials_and_an_unreachable_registry_are_named() {
    let secure = Registry::with_auth_tls();
    let good = Bench::new(&[&secure]);
    let reference = format!("{}/acme/dicom-reader:1.0", secure.host());
    let pinned = good.publish(
        &component("dicom_reader"),
        &reference,
        &["--skip-conformance"],
    );
    let (_, digest) = split_pinned(&pinned);
    let wrong = good.dir.path().join("wrong.yaml");
    let config = std::fs::read_to_string(&good.config).unwrap();
    let (_, password) = secure.credentials().unwrap();
    std::fs::write(&wrong, config.replace(&password, "not-the-password")).unwrap();
    let bench = Bench {
        config: wrong,
        ..Bench::new(&[&secure])
    };
    let stderr = refused_run(&bench, &reference, digest, &trust(&good.public));
    assert!(
        stderr.contains(&format!(
            "registry {} refused the credentials",
            secure.host()
        )),
        "{stderr}"
    );

    let mut open = Registry::open();
    let bench = Bench::new(&[&open]);
    let reference = format!("{}/acme/dicom-reader:1.0", open.host());
    let pinned = bench.publish(
        &component("dicom_reader"),
        &reference,
        &["--skip-conformance"],
    );
    open.stop();
    let (_, digest) = split_pinned(&pinned);
    let stderr = refused_run(
        &bench,
        &reference,
        digest,
        &[
            "--trust",
            bench.public.to_str().unwrap(),
            "--registry-attempts",
            "2",
        ],
    );
    assert!(
        stderr.contains(&format!(
            "registry {} could not be reached (2 attempts",
            open.host()
        )),
        "{stderr}"
    );

    // Retried: a pull started while the registry is down succeeds once it is back.
    let mut child = ward()
        .args([
            "pull",
            &pinned,
            "--trust",
            bench.public.to_str().unwrap(),
            "--no-progress",
        ])
        .args(["--registry-config", bench.config.to_str().unwrap()])
        .args([
            "--store",
            bench.dir.path().join("retry-store").to_str().unwrap(),
        ])
        .args(["--registry-attempts", "12"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        use std::io::BufRead as _;
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ward pull ended before retrying"
        );
        if line.contains("retrying") {
            break;
        }
    }
    open.restart();
    let rest = {
        let mut s = String::new();
        use std::io::Read as _;
        stderr.read_to_string(&mut s).unwrap();
        s
    };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{rest}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&pinned));
}
