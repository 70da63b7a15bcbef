//! Publishing: the conformance report, the component (config, layer, manifest) and its
//! signature pushed together, so that what is at the tag is always signed and its report is
//! always beside it. Signing on its own (`ward sign`) is the last step of the same path.

use super::artifact::{component_artifact, ComponentTypes, Descriptor, Manifest};
use super::client::{Registry, RegistryError};
use super::signing::{SigningKey, SimpleSigning};
use super::{media, tag_beside};
use oci_client::Reference;
use std::collections::BTreeMap;

/// What is published.
pub struct Publication<'a> {
    pub wasm: &'a [u8],
    /// Read from the component itself.
    pub types: ComponentTypes,
    pub vendor: Option<String>,
    /// `ward conformance --json` of this component; None when the publisher skipped it.
    pub conformance_report: Option<Vec<u8>>,
}

/// Where it went.
#[derive(Debug, Clone)]
pub struct Published {
    /// registry/repository:tag
    pub reference: String,
    pub manifest_digest: String,
    pub layer_digest: String,
    pub signature_tag: String,
    pub conformance_tag: Option<String>,
}

impl Published {
    /// `registry/repository:tag@sha256:…`: what a pipeline pins.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.reference, self.manifest_digest)
    }
}

/// Pushes `publication` to `reference`'s tag and signs it with `key`; `progress` hears the
/// component's upload (bytes sent, bytes in all).
pub fn publish(
    registry: &Registry,
    reference: &Reference,
    publication: &Publication<'_>,
    key: &SigningKey,
    progress: &dyn Fn(u64, u64),
) -> Result<Published, RegistryError> {
    let mut annotations = BTreeMap::from([
        (
            media::ANNOTATION_CONTRACT.to_string(),
            crate::engine::CONTRACT_VERSION_TEXT.to_string(),
        ),
        (
            media::ANNOTATION_CREATED.to_string(),
            crate::jobs::rfc3339_utc(std::time::SystemTime::now()),
        ),
    ]);
    if let Some(vendor) = &publication.vendor {
        annotations.insert(media::ANNOTATION_VENDOR.to_string(), vendor.clone());
    }
    let report_digest = match &publication.conformance_report {
        Some(report) => {
            let d = registry.push_blob(reference, report, &|_| {})?;
            annotations.insert(media::ANNOTATION_CONFORMANCE.to_string(), d.clone());
            annotations.insert(
                media::ANNOTATION_CONFORMANCE_VERDICT.to_string(),
                "pass".to_string(),
            );
            Some(d)
        }
        None => {
            annotations.insert(
                media::ANNOTATION_CONFORMANCE_VERDICT.to_string(),
                "skipped".to_string(),
            );
            None
        }
    };
    let created = annotations[media::ANNOTATION_CREATED].clone();
    let artifact = component_artifact(
        publication.wasm,
        publication.types.clone(),
        publication.vendor.clone(),
        created,
        annotations,
    );
    let total = publication.wasm.len() as u64;
    registry.push_blob(reference, publication.wasm, &|sent| progress(sent, total))?;
    registry.push_blob(reference, &artifact.config, &|_| {})?;
    let manifest_digest = registry.push_manifest(reference, &artifact.manifest)?;

    // The report, findable beside the component by its tag; it is bound to the component by
    // the digest in the signed manifest's annotations, and its own manifest is signed.
    let conformance_tag = match (&publication.conformance_report, report_digest) {
        (Some(report), Some(_)) => {
            let tag = tag_beside(&manifest_digest, "conformance").expect("sha256 digest");
            let config = b"{}".to_vec();
            registry.push_blob(reference, &config, &|_| {})?;
            let mut m = Manifest::new(
                Descriptor::of(media::CONFORMANCE_CONFIG, &config),
                vec![Descriptor::of(media::CONFORMANCE_REPORT, report)],
            );
            m.artifact_type = Some(media::CONFORMANCE_REPORT.to_string());
            m.annotations.insert(
                "dev.ward.conformance.subject".to_string(),
                manifest_digest.clone(),
            );
            let report_manifest = registry.push_manifest(&retag(reference, &tag), &m.to_bytes())?;
            // Signed too, so the report verifies on its own (`ward verify` of it by digest).
            sign(registry, &by_digest(reference, &report_manifest), key)?;
            Some(tag)
        }
        _ => None,
    };

    let signature_tag = sign(registry, &by_digest(reference, &manifest_digest), key)?;
    Ok(Published {
        reference: super::trust::without_digest(reference),
        manifest_digest,
        layer_digest: artifact.layer.digest,
        signature_tag,
        conformance_tag,
    })
}

/// Signs the manifest `reference` names by digest, as `cosign sign --key` does: a
/// simple-signing payload naming the digest, pushed as a layer of the manifest at tag
/// `sha256-<hex>.sig` with the signature in its annotation. Signatures already there are kept
/// (several vendors, or a key rotation, may sign one component). Returns the tag.
pub fn sign(
    registry: &Registry,
    reference: &Reference,
    key: &SigningKey,
) -> Result<String, RegistryError> {
    let digest = reference.digest().ok_or_else(|| RegistryError::Other {
        host: reference.registry().to_string(),
        reference: reference.whole(),
        why: "sign a manifest by digest: REF@sha256:…".to_string(),
    })?;
    let tag = tag_beside(digest, "sig").ok_or_else(|| RegistryError::Other {
        host: reference.registry().to_string(),
        reference: reference.whole(),
        why: format!("'{digest}' is not a sha256 digest"),
    })?;
    let repository = format!("{}/{}", reference.registry(), reference.repository());
    let payload = SimpleSigning::new(&repository, digest).to_bytes();
    let signature = key.sign(&payload);
    registry.push_blob(reference, &payload, &|_| {})?;
    let mut layer = Descriptor::of(media::SIMPLE_SIGNING, &payload);
    layer
        .annotations
        .insert(media::SIGNATURE_ANNOTATION.to_string(), signature);

    let at_tag = retag(reference, &tag);
    let mut layers = match registry.pull_manifest(&at_tag) {
        Ok((bytes, _)) => Manifest::parse(&bytes)
            .map(|m| m.layers)
            .unwrap_or_default(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    layers.retain(|l| l.digest != layer.digest);
    layers.push(layer);
    // An image config as cosign writes one: its rootfs lists the layers.
    let config = serde_json::json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).expect("a config always serialises");
    registry.push_blob(reference, &config, &|_| {})?;
    let manifest = Manifest::new(Descriptor::of(media::OCI_CONFIG, &config), layers);
    registry.push_manifest(&at_tag, &manifest.to_bytes())?;
    Ok(tag)
}

fn by_digest(reference: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        reference.registry().to_string(),
        reference.repository().to_string(),
        digest.to_string(),
    )
}

fn retag(reference: &Reference, tag: &str) -> Reference {
    Reference::with_tag(
        reference.registry().to_string(),
        reference.repository().to_string(),
        tag.to_string(),
    )
}
