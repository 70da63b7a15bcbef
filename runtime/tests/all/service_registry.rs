//! Registry components under `ward serve`, as a hospital meets them: a real registry (CNCF
//! distribution), components published and signed by the real `ward publish`, and the real
//! service. A tag is pinned when the pipeline is stored; each tenant's jobs use a component
//! only when it verifies against that tenant's own keys; the job records say who signed it.

use crate::registry_support::Registry as TestRegistry;
use crate::service::{hash, Server};
use crate::support::*;
use serde_json::Value;
use std::path::Path;

const ACME_OP: &str = "acme-users-operator-token";
const OTHERS_OP: &str = "others-operator-token";
const STRICT_OP: &str = "strict-operator-token";

/// `ward key generate DIR/NAME`; returns the public key's fingerprint.
fn key(dir: &Path, name: &str) -> String {
    let out = run_ward(&["key", "generate", dir.join(name).to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint:"))
        .expect("ward key generate prints the fingerprint")
        .trim()
        .to_string()
}

/// `ward publish` of component `name` to `reference`, signed with DIR/KEY.key and without
/// conformance; returns the manifest digest it prints.
fn publish(dir: &Path, name: &str, reference: &str, key: &str) -> String {
    let out = run_ward(&[
        "publish",
        component(name).to_str().unwrap(),
        reference,
        "--key",
        dir.join(format!("{key}.key")).to_str().unwrap(),
        "--registry-config",
        dir.join("registries.yaml").to_str().unwrap(),
        "--skip-conformance",
        "--no-progress",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pinned = out
        .stdout
        .lines()
        .find(|l| l.starts_with(reference))
        .unwrap_or_else(|| panic!("ward publish prints REF@DIGEST:\n{}", out.stdout));
    pinned.rsplit_once('@').unwrap().1.trim().to_string()
}

fn pipeline_yaml(name: &str, reference: &str) -> String {
    format!(
        "api-version: 0.1
name: {name}
operators:
  - name: stage
    component: {{ref: '{reference}'}}
    parameters: {{behaviour: ok, sleep-ms: '10'}}
    input: [{{path: /payload}}]
"
    )
}

fn store_pipeline(server: &Server, token: &str, yaml: &str) -> (u16, Value) {
    server.send_raw(
        "POST",
        "/v1/pipelines",
        token,
        "application/yaml",
        yaml.as_bytes(),
    )
}

fn summary(server: &Server, job: &str) -> Value {
    let dir = server.state.join("jobs").join(job);
    let attempt = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("summary.json").is_file())
        .max()
        .unwrap_or_else(|| panic!("job {job} left a summary.json under {}", dir.display()));
    serde_json::from_slice(&std::fs::read(attempt.join("summary.json")).unwrap()).unwrap()
}

/// The service's configuration additions: the registry configuration, and three tenants
/// — one trusting acme's key, one trusting another vendor's, one trusting acme's but
/// requiring a conformance verdict.
fn tenants() -> String {
    format!(
        "  - name: acme-users
    tokens: [{{name: operator, role: operator, sha256: {a}}}]
    trust: {{keys: [acme.pub]}}
  - name: others
    tokens: [{{name: operator, role: operator, sha256: {o}}}]
    trust: {{keys: [other.pub]}}
  - name: strict
    tokens: [{{name: operator, role: operator, sha256: {s}}}]
    trust: {{keys: [acme.pub], require-conformance: true}}
",
        a = hash(ACME_OP),
        o = hash(OTHERS_OP),
        s = hash(STRICT_OP),
    )
}

#[test]
fn a_tag_is_pinned_when_stored_and_each_tenant_runs_only_what_its_keys_signed() {
    let registry = TestRegistry::open();
    let dir = tempdir();
    std::fs::write(
        dir.path().join("registries.yaml"),
        format!(
            "registries:\n  \"{}\": {{insecure: true}}\n",
            registry.host()
        ),
    )
    .unwrap();
    let acme = key(dir.path(), "acme");
    key(dir.path(), "other");
    let reference = format!("{}/acme/misbehave:1.0", registry.host());
    let first = publish(dir.path(), "misbehave", &reference, "acme");

    let root = dir.path().to_path_buf();
    let mut server = Server::start_with(
        dir,
        2,
        "4Gi",
        1,
        "registry: {config: registries.yaml}",
        &tenants(),
        "http",
    );
    let yaml = pipeline_yaml("by-tag", &reference);
    let (code, stored) = store_pipeline(&server, ACME_OP, &yaml);
    assert_eq!(code, 201, "{stored}");
    let described = server.ok("GET", "/v1/pipelines/by-tag", ACME_OP, None);
    assert_eq!(
        described["pins"][0]["manifest_digest"], first,
        "{described}"
    );
    assert_eq!(described["pins"][0]["reference"], reference.as_str());

    // The tag moves to another component; the stored version still runs the one it pinned.
    let moved = publish(&root, "segment", &reference, "acme");
    assert_ne!(moved, first);
    let payload_dir = tempdir();
    std::fs::write(payload_dir.path().join("a.txt"), "a").unwrap();
    let payload = server.payload(ACME_OP, payload_dir.path());
    let job = server.job(ACME_OP, "by-tag", &payload, "normal", true);
    let done = server.wait(ACME_OP, &job);
    assert_eq!(done["state"], "succeeded", "{done}");
    let record = summary(&server, &job);
    let provenance = &record["stages"][0]["provenance"];
    assert_eq!(provenance["reference"], reference.as_str(), "{record}");
    assert_eq!(provenance["manifest_digest"], first, "{record}");
    assert_eq!(provenance["signer"], acme.as_str(), "{record}");
    assert_eq!(provenance["conformance"], "skipped", "{record}");
    let misbehave = std::fs::read(component("misbehave")).unwrap();
    assert_eq!(
        record["stages"][0]["digest"],
        ward::registry::sha256_digest(&misbehave),
        "the pinned component ran, not the one the tag names now"
    );

    // Another tenant's keys count for nothing: `others` trusts another vendor's key.
    let (code, refused) = store_pipeline(&server, OTHERS_OP, &yaml);
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["check"], "signature", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("signature check failed"), "{message}");
    assert!(server.ok("GET", "/v1/pipelines", OTHERS_OP, None)["items"]
        .as_array()
        .unwrap()
        .is_empty());
    // A tenant that requires conformance refuses a component published without it.
    let (code, refused) = store_pipeline(&server, STRICT_OP, &yaml);
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["check"], "conformance", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("conformance check failed"), "{message}");

    // The service's view of the tenant's components.
    let listed = server.ok("GET", "/v1/components", ACME_OP, None);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    let item = &items[0];
    assert_eq!(item["reference"], reference.as_str());
    assert_eq!(item["manifest_digest"], first);
    assert_eq!(item["signer"], acme.as_str());
    assert_eq!(item["conformance"], "skipped");
    assert_eq!(item["pipelines"][0], "by-tag:1");
    let first_used = item["first_used"].as_f64().expect("a job used it");
    let job2 = server.job(ACME_OP, "by-tag", &payload, "normal", true);
    assert_eq!(server.wait(ACME_OP, &job2)["state"], "succeeded");
    let item = server.ok("GET", "/v1/components", ACME_OP, None)["items"][0].clone();
    assert_eq!(item["first_used"].as_f64(), Some(first_used));
    assert!(item["last_used"].as_f64().unwrap() > first_used, "{item}");
    let cli = ward()
        .args(["component", "list"])
        .env("WARD_URL", &server.url)
        .env("WARD_TOKEN", ACME_OP)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{text}");
    assert!(text.contains(&format!("{reference}@{first}")), "{text}");
    assert!(text.contains(&format!("signer {acme}")), "{text}");
    assert!(text.contains("pinned by by-tag:1"), "{text}");
    for token in [OTHERS_OP, STRICT_OP] {
        let other = server.ok("GET", "/v1/components", token, None);
        assert!(other["items"].as_array().unwrap().is_empty(), "{other}");
    }

    // The pin survives a restart; a key taken out of the tenant's configuration stops new
    // jobs, naming the check that failed.
    server.kill();
    let config = std::fs::read_to_string(&server.config).unwrap();
    let config = config.replacen("trust: {keys: [acme.pub]}", "trust: {keys: [other.pub]}", 1);
    std::fs::write(&server.config, config).unwrap();
    server.launch();
    let described = server.ok("GET", "/v1/pipelines/by-tag", ACME_OP, None);
    assert_eq!(
        described["pins"][0]["manifest_digest"], first,
        "{described}"
    );
    let job3 = server.job(ACME_OP, "by-tag", &payload, "normal", true);
    let failed = server.wait(ACME_OP, &job3);
    assert_eq!(failed["state"], "failed", "{failed}");
    let failure = failed["failure"].as_str().unwrap();
    assert!(failure.contains("signature check failed"), "{failure}");
    assert_eq!(failed["attempts"], 1, "a refusal is not retried: {failed}");
}

#[test]
fn a_bad_trust_key_is_named_where_it_was_written() {
    let dir = tempdir();
    std::fs::write(dir.path().join("bad.pub"), "not a key\n").unwrap();
    std::fs::write(
        dir.path().join("registries.yaml"),
        "registries: {h: {insecur: true}}\n",
    )
    .unwrap();
    let config = dir.path().join("serve.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0
state: state
components: .
registry: {{config: registries.yaml}}
tenants:
  - name: radiology
    tokens: [{{name: ci, role: operator, sha256: {t}}}]
    trust:
      keys: [bad.pub, missing.pub]
      require-conformance: maybe
",
            t = hash("a-token")
        ),
    )
    .unwrap();
    let checked = run_ward(&["serve", "--check", config.to_str().unwrap()]);
    assert_eq!(checked.code, 2, "{}", checked.stderr);
    let at = |line: usize, column: usize| format!("{}:{line}:{column}: ", config.display());
    let said = &checked.stderr;
    let has = |prefix: String, words: &str| {
        assert!(
            said.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(words)),
            "a line at {prefix} says {words:?}:\n{said}"
        )
    };
    has(at(9, 14), "trust key");
    has(at(9, 14), "is not a PEM public key");
    has(at(9, 23), "cannot read");
    has(
        at(10, 28),
        "require-conformance 'maybe' must be true or false",
    );
    has(at(4, 20), "registry.config");
    let started = run_ward(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(started.code, 2, "{}", started.stderr);
    assert!(
        started.stderr.contains("is not a PEM public key"),
        "{}",
        started.stderr
    );
}

#[test]
fn a_verified_component_runs_from_the_store_while_the_registry_is_down() {
    let registry = TestRegistry::open();
    let dir = tempdir();
    std::fs::write(
        dir.path().join("registries.yaml"),
        format!(
            "registries:\n  \"{}\": {{insecure: true}}\n",
            registry.host()
        ),
    )
    .unwrap();
    key(dir.path(), "acme");
    key(dir.path(), "other");
    let reference = format!("{}/acme/misbehave:2.0", registry.host());
    let digest = publish(dir.path(), "misbehave", &reference, "acme");
    let server = Server::start_with(
        dir,
        2,
        "4Gi",
        1,
        "registry: {config: registries.yaml}",
        &tenants(),
        "http",
    );

    // A tag the registry does not have cannot be pinned: refused, nothing stored.
    let missing = format!("{}/acme/misbehave:9.9", registry.host());
    let (code, refused) = store_pipeline(&server, ACME_OP, &pipeline_yaml("nothing", &missing));
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["check"], "pin", "{refused}");
    assert!(server.ok("GET", "/v1/pipelines", ACME_OP, None)["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // A reference pinned in the file itself is kept as written and listed too.
    let yaml = pipeline_yaml("pinned", &reference).replace(
        &format!("ref: '{reference}'}}"),
        &format!("ref: '{reference}', digest: {digest}}}"),
    );
    let (code, stored) = store_pipeline(&server, ACME_OP, &yaml);
    assert_eq!(code, 201, "{stored}");
    let listed = server.ok("GET", "/v1/components", ACME_OP, None);
    assert_eq!(listed["items"][0]["manifest_digest"], digest, "{listed}");
    assert!(
        listed["items"][0]["first_used"].is_null(),
        "no job yet: {listed}"
    );

    // Verified once, the component is used from the local store: the registry may be down.
    drop(registry);
    let payload_dir = tempdir();
    std::fs::write(payload_dir.path().join("a.txt"), "a").unwrap();
    let payload = server.payload(ACME_OP, payload_dir.path());
    let job = server.job(ACME_OP, "pinned", &payload, "normal", true);
    let done = server.wait(ACME_OP, &job);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        summary(&server, &job)["stages"][0]["provenance"]["manifest_digest"],
        digest
    );
}
