//! The component as an OCI artifact, to the CNCF TAG-Runtime wasm layout: an image manifest
//! whose config (`application/vnd.wasm.config.v0+json`) names the platform (`wasm`/`wasip2`),
//! the layer digests and the component's world, imports and exports, and whose one layer
//! (`application/wasm`) is the component. Ward writes the manifest bytes itself so the digest
//! it signs is the digest of exactly these bytes.

use super::media;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: super::sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        }
    }
}

/// An OCI image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            annotations: BTreeMap::new(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("not an OCI image manifest: {e}"))?;
        if m.schema_version != 2 {
            return Err(format!("schemaVersion is {}, not 2", m.schema_version));
        }
        if let Some(t) = m
            .media_type
            .as_deref()
            .filter(|t| *t != media::OCI_MANIFEST)
        {
            return Err(format!("mediaType is '{t}', not '{}'", media::OCI_MANIFEST));
        }
        Ok(m)
    }
}

/// The wasm layout's config blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub layer_digests: Vec<String>,
    #[serde(default)]
    pub component: Option<ComponentTypes>,
}

/// What the component imports and exports, and the world it targets.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ComponentTypes {
    #[serde(default)]
    pub exports: Vec<String>,
    #[serde(default)]
    pub imports: Vec<String>,
    #[serde(default)]
    pub target: Option<String>,
}

/// A component ready to push: the config and manifest bytes and their descriptors.
pub struct ComponentArtifact {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub layer: Descriptor,
}

/// Builds the artifact for `wasm` with `types` read from it and `annotations` on the manifest.
pub fn component_artifact(
    wasm: &[u8],
    types: ComponentTypes,
    author: Option<String>,
    created: String,
    annotations: BTreeMap<String, String>,
) -> ComponentArtifact {
    let layer = Descriptor::of(media::WASM_LAYER, wasm);
    let config = WasmConfig {
        created: Some(created),
        author,
        architecture: "wasm".to_string(),
        os: "wasip2".to_string(),
        layer_digests: vec![layer.digest.clone()],
        component: Some(types),
    };
    let config = serde_json::to_vec(&config).expect("a config always serialises");
    let mut manifest = Manifest::new(
        Descriptor::of(media::WASM_CONFIG, &config),
        vec![layer.clone()],
    );
    manifest.artifact_type = Some(media::WASM_CONFIG.to_string());
    manifest.annotations = annotations;
    let manifest = manifest.to_bytes();
    ComponentArtifact {
        manifest_digest: super::sha256_digest(&manifest),
        config,
        manifest,
        layer,
    }
}

/// A pulled manifest checked to be a wasm component: its config and its one wasm layer.
#[derive(Debug, Clone)]
pub struct ComponentManifest {
    pub manifest: Manifest,
    pub layer: Descriptor,
}

/// Checks that `bytes` is a component manifest of the wasm layout.
pub fn parse_component_manifest(bytes: &[u8]) -> Result<ComponentManifest, String> {
    let manifest = Manifest::parse(bytes)?;
    if manifest.config.media_type != media::WASM_CONFIG {
        return Err(format!(
            "config media type is '{}', not '{}': not a wasm component artifact",
            manifest.config.media_type,
            media::WASM_CONFIG
        ));
    }
    let layer = match manifest.layers.as_slice() {
        [one] if one.media_type == media::WASM_LAYER => one.clone(),
        [one] => {
            return Err(format!(
                "its layer's media type is '{}', not '{}'",
                one.media_type,
                media::WASM_LAYER
            ))
        }
        layers => {
            return Err(format!(
                "it has {} layers; the wasm layout has exactly one '{}' layer",
                layers.len(),
                media::WASM_LAYER
            ))
        }
    };
    if super::digest_hex(&layer.digest).is_none() {
        return Err(format!("layer digest '{}' is not sha256", layer.digest));
    }
    Ok(ComponentManifest { manifest, layer })
}

/// Checks a pulled config blob against the manifest that named it.
pub fn check_config(bytes: &[u8], layer: &Descriptor) -> Result<WasmConfig, String> {
    let config: WasmConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("config is not a wasm config: {e}"))?;
    if config.architecture != "wasm" || !config.os.starts_with("wasip") {
        return Err(format!(
            "config names architecture '{}', os '{}': not wasm/wasip2",
            config.architecture, config.os
        ));
    }
    if !config.layer_digests.is_empty() && config.layer_digests != [layer.digest.clone()] {
        return Err(format!(
            "config's layerDigests {:?} do not name the manifest's layer {}",
            config.layer_digests, layer.digest
        ));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_parses_back_as_a_component() {
        let a = component_artifact(
            b"\0asm",
            ComponentTypes::default(),
            Some("Acme".into()),
            "2026-01-01T00:00:00Z".into(),
            BTreeMap::from([("k".to_string(), "v".to_string())]),
        );
        let m = parse_component_manifest(&a.manifest).unwrap();
        assert_eq!(m.layer, a.layer);
        assert_eq!(m.manifest.annotations["k"], "v");
        assert_eq!(super::super::sha256_digest(&a.manifest), a.manifest_digest);
        check_config(&a.config, &m.layer).unwrap();
        let other = Descriptor::of(media::WASM_LAYER, b"other");
        assert!(check_config(&a.config, &other).is_err());
    }

    #[test]
    fn a_manifest_of_another_layout_is_refused_by_name() {
        let m = Manifest::new(
            Descriptor::of(media::OCI_CONFIG, b"{}"),
            vec![Descriptor::of(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                b"x",
            )],
        );
        let why = parse_component_manifest(&m.to_bytes()).unwrap_err();
        assert!(why.contains("config media type"), "{why}");
        let m = Manifest::new(
            Descriptor::of(media::WASM_CONFIG, b"{}"),
            vec![
                Descriptor::of(media::WASM_LAYER, b"a"),
                Descriptor::of(media::WASM_LAYER, b"b"),
            ],
        );
        let why = parse_component_manifest(&m.to_bytes()).unwrap_err();
        assert!(why.contains("2 layers"), "{why}");
    }
}
