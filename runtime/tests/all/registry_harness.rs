//! The registry tests' own parts, proved against real registries without Ward: the
//! reference pusher writes the Wasm OCI artifact layout, cosign_check.py's signatures land
//! where cosign puts them and verify (and only the right ones), the auth registry refuses
//! wrong credentials, and a stopped registry comes back with its content.

use crate::registry_support::{
    cosign_genkey, cosign_verify, minimal_component, push_signature, registry_config_yaml,
    registry_script, run_spec_push, sha256_digest, signature_tag, spec_push, write_registry_config,
    Registry,
};
use crate::support::tempdir;
use serde_json::Value;

const REPO: &str = "stages/harness";

fn json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{what} is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// Pushes a component with spec_push.py and signs it with cosign_check.py, reading both
/// back with skopeo.
fn push_sign_and_read_back(registry: &Registry) {
    let dir = tempdir();
    let wasm = minimal_component(dir.path(), "harness");
    let layer = std::fs::read(&wasm).unwrap();
    let digest = spec_push(
        registry,
        REPO,
        "1.0.0",
        &wasm,
        &[
            "--annotation",
            "org.opencontainers.image.version=1.0.0",
            "--export",
            "ward:stage/run",
            "--import",
            "wasi:cli/stdout",
        ],
    );

    // The manifest, as an independent client reads it: its bytes have the printed digest.
    let raw = registry.skopeo_manifest(&format!("{REPO}:1.0.0"));
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "the manifest's bytes have the digest printed"
    );
    let manifest = json(&raw, "the manifest");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], sha256_digest(&layer).as_str());
    assert_eq!(layers[0]["size"], layer.len());
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "1.0.0"
    );
    let by_digest = registry.skopeo_manifest(&format!("{REPO}@{digest}"));
    assert_eq!(by_digest, raw, "the same manifest by digest as by tag");

    let config_bytes = registry.skopeo_config(&format!("{REPO}:1.0.0"));
    assert_eq!(
        sha256_digest(&config_bytes),
        manifest["config"]["digest"].as_str().unwrap()
    );
    let config = json(&config_bytes, "the config blob");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(config["layerDigests"][0], sha256_digest(&layer).as_str());
    assert_eq!(config["component"]["exports"][0], "ward:stage/run");
    assert_eq!(config["component"]["imports"][0], "wasi:cli/stdout");

    // The signature, where cosign's tag fallback puts it.
    let (key, public) = cosign_genkey(dir.path(), "signer");
    let (_, other_public) = cosign_genkey(dir.path(), "other");
    let signature_digest = push_signature(registry, REPO, &digest, &key, &[]);
    let sig_ref = format!("{REPO}:{}", signature_tag(&digest));
    let raw = registry.skopeo_manifest(&sig_ref);
    assert_eq!(sha256_digest(&raw), signature_digest);
    let manifest = json(&raw, "the signature manifest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let signature = layers[0]["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap_or_else(|| panic!("no signature annotation: {manifest}"));
    let payload = registry.skopeo_blob(&sig_ref, layers[0]["digest"].as_str().unwrap());
    let payload_file = dir.path().join("payload.json");
    std::fs::write(&payload_file, &payload).unwrap();
    let payload_json = json(&payload, "the payload");
    let critical = &payload_json["critical"];
    assert_eq!(critical["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(
        critical["identity"]["docker-reference"],
        format!("{}/{REPO}", registry.host())
    );

    let good = cosign_verify(&public, &payload_file, signature, Some(&digest));
    assert_eq!(good.code, 0, "the signature verifies: {}", good.stderr);

    let wrong_key = cosign_verify(&other_public, &payload_file, signature, None);
    assert_ne!(wrong_key.code, 0, "another key's signature is refused");
    assert!(
        wrong_key.stderr.contains("does not verify"),
        "{}",
        wrong_key.stderr
    );

    // The payload made to name another manifest: one hex digit of the digest changed.
    let edited = dir.path().join("edited.json");
    let hex = digest.strip_prefix("sha256:").unwrap();
    let flipped = format!(
        "{}{}",
        if hex.starts_with('0') { '1' } else { '0' },
        &hex[1..]
    );
    let text = String::from_utf8(payload).unwrap();
    assert!(text.contains(hex), "{text}");
    std::fs::write(&edited, text.replace(hex, &flipped)).unwrap();
    let tampered = cosign_verify(&public, &edited, signature, None);
    assert_ne!(tampered.code, 0, "an edited payload is refused");
    assert!(
        tampered.stderr.contains("does not verify"),
        "{}",
        tampered.stderr
    );

    let other_digest = sha256_digest(b"another manifest");
    let mismatch = cosign_verify(&public, &payload_file, signature, Some(&other_digest));
    assert_ne!(mismatch.code, 0, "a payload for another digest is refused");
    assert!(
        mismatch.stderr.contains(&other_digest),
        "{}",
        mismatch.stderr
    );
}

#[test]
fn the_open_registry_holds_the_reference_artifact_and_its_signature() {
    push_sign_and_read_back(&Registry::open());
}

#[test]
fn the_tls_auth_registry_holds_the_reference_artifact_and_its_signature() {
    let registry = Registry::with_auth_tls();
    assert!(registry.is_tls() && registry.url().starts_with("https://"));
    push_sign_and_read_back(&registry);
}

#[test]
fn the_auth_registry_refuses_wrong_or_missing_credentials() {
    let registry = Registry::with_auth_tls();
    let dir = tempdir();
    let wasm = minimal_component(dir.path(), "refused");
    let ca = registry.ca_pem().expect("a CA");
    let (user, _) = registry.credentials().expect("credentials");
    let push = |credentials: &[&str]| {
        let out = registry_script("spec_push.py")
            .args(["--registry", &registry.host(), "--repo", REPO, "--tag", "x"])
            .arg("--wasm")
            .arg(&wasm)
            .arg("--ca")
            .arg(&ca)
            .args(credentials)
            .output()
            .expect("python3 runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = push(&["--user", &user, "--password", "wrong"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("credentials refused"),
        "{stderr}"
    );
    let (code, stderr) = push(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("credentials needed"),
        "{stderr}"
    );
}

#[test]
fn a_stopped_registry_refuses_connections_and_restarts_with_its_content() {
    let mut registry = Registry::open();
    let dir = tempdir();
    let wasm = minimal_component(dir.path(), "kept");
    let digest = spec_push(&registry, REPO, "kept", &wasm, &[]);
    let host = registry.host();

    registry.stop();
    assert!(!registry.is_running());
    let args = [
        "--repo",
        REPO,
        "--tag",
        "down",
        "--wasm",
        wasm.to_str().unwrap(),
    ];
    let down = run_spec_push(&registry, &args);
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(
        down.stderr.contains("cannot reach the registry"),
        "{}",
        down.stderr
    );

    registry.restart();
    assert!(registry.is_running());
    assert_eq!(registry.host(), host, "the same port after a restart");
    let raw = registry.skopeo_manifest(&format!("{REPO}:kept"));
    assert_eq!(
        sha256_digest(&raw),
        digest,
        "what was pushed before is still there"
    );
}

/// Ward's registry configuration as its reader is specified: unknown fields are errors.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistriesFile {
    registries: std::collections::BTreeMap<String, RegistryEntry>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct RegistryEntry {
    #[serde(default)]
    insecure: bool,
    ca: Option<std::path::PathBuf>,
    username: Option<String>,
    password: Option<String>,
}

#[test]
fn the_registry_configuration_names_each_registry_as_it_is_reached() {
    let open = Registry::open();
    let secured = Registry::with_auth_tls();
    let dir = tempdir();
    let path = write_registry_config(dir.path(), &[&open, &secured]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, registry_config_yaml(&[&open, &secured]));
    let config: RegistriesFile = marked_yaml::from_yaml(0, &text)
        .unwrap_or_else(|e| panic!("{} is not the configuration: {e}\n{text}", path.display()));
    assert_eq!(config.registries.len(), 2, "{text}");
    assert_eq!(
        config.registries[&open.host()],
        RegistryEntry {
            insecure: true,
            ca: None,
            username: None,
            password: None
        },
        "{text}"
    );
    let (user, password) = secured.credentials().unwrap();
    assert_eq!(
        config.registries[&secured.host()],
        RegistryEntry {
            insecure: false,
            ca: secured.ca_pem(),
            username: Some(user),
            password: Some(password)
        },
        "{text}"
    );
}

/// `--append` adds a signature to those under the tag, as cosign does for a second signer;
/// `--payload-digest` signs another manifest under this one's tag (a signature a verifier
/// must refuse for this manifest).
#[test]
fn signatures_append_under_one_tag_and_can_name_another_manifest() {
    let registry = Registry::open();
    let dir = tempdir();
    let wasm = minimal_component(dir.path(), "twice");
    let digest = spec_push(&registry, REPO, "twice", &wasm, &[]);
    let (first, first_public) = cosign_genkey(dir.path(), "first");
    let (second, second_public) = cosign_genkey(dir.path(), "second");
    let other = sha256_digest(b"another manifest");
    push_signature(&registry, REPO, &digest, &first, &[]);
    let signature_digest = push_signature(
        &registry,
        REPO,
        &digest,
        &second,
        &["--append", "--payload-digest", &other],
    );

    let sig_ref = format!("{REPO}:{}", signature_tag(&digest));
    let raw = registry.skopeo_manifest(&sig_ref);
    assert_eq!(sha256_digest(&raw), signature_digest);
    let manifest = json(&raw, "the signature manifest");
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "both signatures are kept: {manifest}");
    for (layer, public, signed) in [
        (&layers[0], &first_public, &digest),
        (&layers[1], &second_public, &other),
    ] {
        let payload = dir.path().join("payload.json");
        let bytes = registry.skopeo_blob(&sig_ref, layer["digest"].as_str().unwrap());
        std::fs::write(&payload, bytes).unwrap();
        let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .expect("a signature annotation");
        let out = cosign_verify(public, &payload, signature, Some(signed));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}
