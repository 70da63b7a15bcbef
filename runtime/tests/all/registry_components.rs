//! Registry components end to end, against real CNCF distribution registries (one open, one
//! with basic auth over TLS) started by `registry_support`: `ward publish`, `ward pull`,
//! `ward sign`/`verify`, pipelines whose operators are registry references, the artifact read
//! by skopeo, and interoperation with independent Python implementations of the wasm OCI
//! layout and of cosign's signatures. Every refusal must name the check that failed and leave
//! nothing compiled or run.

use crate::registry_support::{write_registry_config, Registry};
use crate::support::*;
use std::path::{Path, PathBuf};

mod interop;
mod refusals;
mod round_trip;

/// A vendor's key pair, a registry configuration and a component store in a scratch dir.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
    pub key: PathBuf,
    pub public: PathBuf,
    /// The public key's fingerprint, as `ward key generate` printed it.
    pub fingerprint: String,
}

impl Bench {
    pub fn new(registries: &[&Registry]) -> Bench {
        let dir = tempdir();
        let config = write_registry_config(dir.path(), registries);
        let (key, public, fingerprint) = generate_key(dir.path(), "acme");
        Bench {
            store: dir.path().join("store"),
            config,
            key,
            public,
            fingerprint,
            dir,
        }
    }

    /// `ward ARGS --registry-config CONFIG --store STORE`.
    pub fn ward(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--registry-config",
            self.config.to_str().unwrap(),
            "--store",
            self.store.to_str().unwrap(),
        ]);
        run_ward(&all)
    }

    /// Publishes `wasm` to `reference` (HOST/VENDOR/NAME:TAG) with the bench's key; returns
    /// the pinned `REF@sha256:…` it printed.
    pub fn publish(&self, wasm: &Path, reference: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "publish",
            wasm.to_str().unwrap(),
            reference,
            "--key",
            self.key.to_str().unwrap(),
            "--no-progress",
        ];
        args.extend_from_slice(extra);
        let out = self.ward(&args);
        assert_eq!(out.code, 0, "ward publish {reference}: {}", out.stderr);
        let pinned = out.stdout.trim().to_string();
        assert!(
            pinned.starts_with(&format!("{reference}@sha256:"))
                && pinned.len() == reference.len() + 72,
            "ward publish printed {pinned:?}"
        );
        pinned
    }
}

/// `ward key generate DIR/NAME`: (private, public, fingerprint).
pub fn generate_key(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let prefix = dir.join(name);
    let out = run_ward(&["key", "generate", prefix.to_str().unwrap()]);
    assert_eq!(out.code, 0, "ward key generate: {}", out.stderr);
    let fingerprint = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fingerprint: "))
        .expect("ward key generate prints the fingerprint")
        .trim()
        .to_string();
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
        fingerprint,
    )
}

/// Splits `REF@DIGEST`.
pub fn split_pinned(pinned: &str) -> (&str, &str) {
    pinned.rsplit_once('@').expect("REF@DIGEST")
}

/// A one-operator pipeline running `reference` pinned at `digest` on the payload.
pub fn one_stage_pipeline(dir: &Path, reference: &str, digest: &str) -> PathBuf {
    write_pipeline(
        dir,
        &format!(
            "api-version: 0.1
name: from-registry
operators:
  - name: stage
    component:
      ref: '{reference}'
      digest: {digest}
    input:
      - path: /payload
    output:
      - name: out
        path: /results
"
        ),
    )
}

/// Every file under `root`, by relative path, with its bytes.
pub fn tree_files(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}
