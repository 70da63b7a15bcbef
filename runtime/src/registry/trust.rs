//! Fetching a registry component and deciding whether it may run: its manifest must hash to
//! the pinned digest, be a wasm component artifact, carry a cosign signature made by one of
//! the trusted keys over a payload naming that digest, and have a layer whose bytes hash to
//! the manifest's layer digest; if the policy asks, its conformance report must be a pass for
//! this very layer. Every refusal names the check that failed. Nothing here compiles a byte.

use super::artifact::{check_config, parse_component_manifest, Manifest};
use super::client::{Registry, RegistryError};
use super::signing::{PublicKey, SimpleSigning};
use super::store::{ComponentStore, StoreError};
use super::{media, tag_beside};
use oci_client::Reference;
use serde::Serialize;
use std::path::PathBuf;

/// The keys a tenant (or a `ward run --trust`) accepts components from.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<PublicKey>,
    /// Refuse components published with `--skip-conformance` or without a passing report.
    pub require_conformance: bool,
}

/// What the component's conformance annotations say, checked against its report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Conformance {
    /// A report that passed, for this layer, is signed with the manifest.
    Pass { report: String },
    /// The publisher skipped conformance.
    Skipped,
    /// The manifest names no conformance verdict (published by another tool).
    None,
}

/// A registry component that verified: where its bytes are, and who signed it.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// The reference as written (registry/repository[:tag]).
    pub reference: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    /// The component file in the local store.
    pub wasm: PathBuf,
    /// The fingerprint of the key whose signature verified.
    pub signer: String,
    /// Where that key was trusted from.
    pub signer_source: String,
    pub vendor: Option<String>,
    pub contract: Option<String>,
    pub conformance: Conformance,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{reference}: no trusted keys: a registry component runs only when signed by a key you trust (`ward run --trust VENDOR.pub`, or the tenant's `trust.keys`)")]
    NoTrustedKeys { reference: String },
    #[error(
        "{reference}: not pinned: give `digest: sha256:…` (`ward pull {reference}` prints it)"
    )]
    NotPinned { reference: String },
    #[error("{reference}: manifest digest check failed: pinned {expected}, but the manifest received does not match: {actual}")]
    ManifestDigest {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}@{digest}: not a component artifact: {why}")]
    NotComponent {
        reference: String,
        digest: String,
        why: String,
    },
    #[error("{reference}@{digest}: signature check failed: no signature (nothing at tag {tag}); sign it with `ward sign`")]
    NoSignature {
        reference: String,
        digest: String,
        tag: String,
    },
    #[error("{reference}@{digest}: signature check failed: {why}")]
    Signature {
        reference: String,
        digest: String,
        why: String,
    },
    #[error("{reference}@{digest}: layer digest check failed: {why}")]
    Layer {
        reference: String,
        digest: String,
        why: String,
    },
    #[error("{reference}@{digest}: conformance check failed: {why}")]
    Conformance {
        reference: String,
        digest: String,
        why: String,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TrustError {
    /// The check that failed, as the API and the provenance records name it.
    pub fn check(&self) -> &'static str {
        match self {
            TrustError::NoTrustedKeys { .. }
            | TrustError::Signature { .. }
            | TrustError::NoSignature { .. } => "signature",
            TrustError::NotPinned { .. } => "pin",
            TrustError::ManifestDigest { .. } => "manifest-digest",
            TrustError::NotComponent { .. } => "artifact",
            TrustError::Layer { .. } => "layer-digest",
            TrustError::Conformance { .. } => "conformance",
            TrustError::Registry(_) | TrustError::Store(_) => "fetch",
        }
    }
}

/// The report fields the trust check reads (the whole `ward conformance --json` report is
/// what is stored).
#[derive(serde::Deserialize)]
struct ReportVerdict {
    passed: bool,
    digest: Option<String>,
}

/// Fetches `reference` (which must carry a digest) into `store`, from the store when it is
/// there already and from `registry` otherwise, and verifies it against `policy`.
pub fn fetch_verified(
    registry: &Registry,
    store: &ComponentStore,
    reference: &Reference,
    policy: &TrustPolicy,
    progress: &dyn Fn(u64, u64),
) -> Result<Verified, TrustError> {
    let name = without_digest(reference);
    let digest = reference
        .digest()
        .ok_or_else(|| TrustError::NotPinned {
            reference: name.clone(),
        })?
        .to_string();
    if policy.keys.is_empty() {
        return Err(TrustError::NoTrustedKeys { reference: name });
    }
    let at = Reference::with_digest(
        reference.registry().to_string(),
        reference.repository().to_string(),
        digest.clone(),
    );
    let fetch = Fetch {
        registry,
        store,
        at: &at,
    };

    // The manifest: its bytes must hash to the pinned digest, whoever served them.
    let manifest_bytes = match store.get(&digest)? {
        Some(b) => b,
        None => {
            let (bytes, actual) = match registry.pull_manifest(&at) {
                Ok(pulled) => pulled,
                Err(RegistryError::Corrupt { why, .. }) => {
                    return Err(TrustError::ManifestDigest {
                        reference: name,
                        expected: digest,
                        actual: why,
                    })
                }
                Err(e) => return Err(e.into()),
            };
            if actual != digest {
                return Err(TrustError::ManifestDigest {
                    reference: name,
                    expected: digest,
                    actual: format!("its bytes hash to {actual}"),
                });
            }
            store.put(&bytes)?;
            bytes
        }
    };
    let component =
        parse_component_manifest(&manifest_bytes).map_err(|why| TrustError::NotComponent {
            reference: name.clone(),
            digest: digest.clone(),
            why,
        })?;

    let (signer, signer_source) = verify_signature(&fetch, &name, &digest, policy)?;

    let config = fetch.blob(&component.manifest.config.digest, &|_| {})?;
    check_config(&config, &component.layer).map_err(|why| TrustError::NotComponent {
        reference: name.clone(),
        digest: digest.clone(),
        why,
    })?;

    let layer = &component.layer;
    let wasm = match store.verified_path(&layer.digest)? {
        Some(p) => p,
        None => {
            let bytes =
                match registry.pull_blob(&at, &layer.digest, &|got| progress(got, layer.size)) {
                    Ok(b) => b,
                    Err(RegistryError::Corrupt { why, .. }) => {
                        return Err(TrustError::Layer {
                            reference: name,
                            digest,
                            why: format!("the layer served for {} {why}", layer.digest),
                        })
                    }
                    Err(e) => return Err(e.into()),
                };
            store.put(&bytes)?;
            store
                .verified_path(&layer.digest)?
                .expect("a blob just stored is there")
        }
    };

    let annotations = &component.manifest.annotations;
    let conformance = conformance(&fetch, &name, &digest, &component.manifest, &layer.digest)?;
    if policy.require_conformance && !matches!(conformance, Conformance::Pass { .. }) {
        return Err(TrustError::Conformance {
            reference: name,
            digest,
            why: match conformance {
                Conformance::Skipped => "it was published with --skip-conformance, and this tenant requires a passing conformance verdict".to_string(),
                _ => "it carries no conformance verdict, and this tenant requires a passing one".to_string(),
            },
        });
    }
    Ok(Verified {
        reference: name,
        manifest_digest: digest,
        layer_digest: layer.digest.clone(),
        wasm,
        signer,
        signer_source,
        vendor: annotations.get(media::ANNOTATION_VENDOR).cloned(),
        contract: annotations.get(media::ANNOTATION_CONTRACT).cloned(),
        conformance,
    })
}

/// Blobs of one repository, from the store or else the registry (then stored).
struct Fetch<'a> {
    registry: &'a Registry,
    store: &'a ComponentStore,
    at: &'a Reference,
}

impl Fetch<'_> {
    fn blob(&self, digest: &str, progress: &dyn Fn(u64)) -> Result<Vec<u8>, TrustError> {
        if let Some(b) = self.store.get(digest)? {
            return Ok(b);
        }
        let bytes = self.registry.pull_blob(self.at, digest, progress)?;
        self.store.put(&bytes)?;
        Ok(bytes)
    }

    /// The manifest at `tag` in the same repository (not stored: tags move).
    fn tagged(&self, tag: &str) -> Result<Option<(Vec<u8>, String)>, TrustError> {
        let r = Reference::with_tag(
            self.at.registry().to_string(),
            self.at.repository().to_string(),
            tag.to_string(),
        );
        match self.registry.pull_manifest(&r) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Finds a signature over a payload naming `digest` made by one of the policy's keys; returns
/// that key's fingerprint and source.
fn verify_signature(
    fetch: &Fetch<'_>,
    name: &str,
    digest: &str,
    policy: &TrustPolicy,
) -> Result<(String, String), TrustError> {
    let tag = tag_beside(digest, "sig").expect("the pinned digest is sha256");
    let fail = |why: String| TrustError::Signature {
        reference: name.to_string(),
        digest: digest.to_string(),
        why,
    };
    // A signature manifest verified before is used again (it is immutable by digest).
    let known = fetch
        .store
        .signature_for(digest)?
        .and_then(|d| fetch.store.get(&d).ok().flatten().map(|b| (b, d)));
    let (bytes, signature_digest) = match known {
        Some(k) => k,
        None => match fetch.tagged(&tag)? {
            Some(m) => m,
            None => {
                return Err(TrustError::NoSignature {
                    reference: name.to_string(),
                    digest: digest.to_string(),
                    tag,
                })
            }
        },
    };
    let manifest =
        Manifest::parse(&bytes).map_err(|why| fail(format!("the manifest at {tag}: {why}")))?;
    let mut seen = Vec::new();
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == media::SIMPLE_SIGNING)
    {
        let Some(signature) = layer.annotations.get(media::SIGNATURE_ANNOTATION) else {
            continue;
        };
        let payload = fetch.blob(&layer.digest, &|_| {})?;
        let Some(key) = policy.keys.iter().find(|k| k.verifies(&payload, signature)) else {
            seen.push(layer.digest.clone());
            continue;
        };
        let parsed = SimpleSigning::parse(&payload)
            .map_err(|why| fail(format!("the signed payload {}: {why}", layer.digest)))?;
        if parsed.critical.image.docker_manifest_digest != digest {
            return Err(fail(format!(
                "the payload signed by {} names manifest {}, not {digest}",
                key.fingerprint(),
                parsed.critical.image.docker_manifest_digest
            )));
        }
        fetch.store.put(&bytes)?;
        fetch.store.record_signature(digest, &signature_digest)?;
        return Ok((key.fingerprint().to_string(), key.source.clone()));
    }
    let keys: Vec<String> = policy
        .keys
        .iter()
        .map(|k| format!("{} ({})", k.fingerprint(), k.source))
        .collect();
    Err(fail(if seen.is_empty() {
        format!("the manifest at {tag} holds no cosign signature layer")
    } else {
        format!(
            "none of the {} signature(s) at {tag} verifies against the trusted keys: {}",
            seen.len(),
            keys.join(", ")
        )
    }))
}

/// The conformance verdict the (signed) manifest names, checked against the report it points
/// to: the report must be for this layer and must have passed.
fn conformance(
    fetch: &Fetch<'_>,
    name: &str,
    digest: &str,
    manifest: &Manifest,
    layer_digest: &str,
) -> Result<Conformance, TrustError> {
    let fail = |why: String| TrustError::Conformance {
        reference: name.to_string(),
        digest: digest.to_string(),
        why,
    };
    let verdict = manifest
        .annotations
        .get(media::ANNOTATION_CONFORMANCE_VERDICT);
    if verdict.map(String::as_str) == Some("skipped") {
        return Ok(Conformance::Skipped);
    }
    let Some(report_digest) = manifest.annotations.get(media::ANNOTATION_CONFORMANCE) else {
        return Ok(Conformance::None);
    };
    let bytes = fetch.blob(report_digest, &|_| {})?;
    let report: ReportVerdict = serde_json::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "report {report_digest} is not a conformance report: {e}"
        ))
    })?;
    if report.digest.as_deref() != Some(layer_digest) {
        return Err(fail(format!(
            "report {report_digest} is for component {}, not this layer {layer_digest}",
            report.digest.as_deref().unwrap_or("(none)")
        )));
    }
    if !report.passed {
        return Err(fail(format!("report {report_digest} is a FAIL")));
    }
    Ok(Conformance::Pass {
        report: report_digest.clone(),
    })
}

/// registry/repository[:tag], without the digest.
pub fn without_digest(reference: &Reference) -> String {
    match reference.tag() {
        Some(tag) => format!("{}/{}:{tag}", reference.registry(), reference.repository()),
        None => format!("{}/{}", reference.registry(), reference.repository()),
    }
}
