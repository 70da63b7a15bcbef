//! The component registry: stage components published to an OCI registry as the CNCF
//! TAG-Runtime wasm artifact, signed the way cosign signs images (key-based, the
//! `sha256-<hex>.sig` tag scheme), pulled into a local content-addressed store, and used by a
//! job only when its manifest digest, layer digest and signature verify against a key the
//! tenant trusts — all of it checked before a byte of the component is compiled.
//!
//! - [`media`]: the media types and annotation keys of the layout.
//! - [`artifact`]: the component's manifest and config, built and checked.
//! - [`signing`]: keys, the simple-signing payload, ECDSA P-256 signatures.
//! - [`config`]: which registries are plain HTTP, their certificates and credentials.
//! - [`client`]: push and pull over the OCI distribution API (oci-client), with retries.
//! - [`store`]: the local content-addressed store, verified on every read.
//! - [`publish`]: component, conformance report and signature pushed together.
//! - [`trust`]: fetching a component and verifying it against a trust policy.
//! - [`resolve`]: a pipeline's registry components made into verified local files.

pub mod artifact;
pub mod client;
pub mod config;
pub mod media;
pub mod publish;
pub mod resolve;
pub mod signing;
pub mod store;
pub mod trust;

pub use client::{Registry, RegistryError};
pub use config::{RegistryConfig, RegistryConfigError};
pub use signing::{KeyError, PublicKey, SigningKey};
pub use store::ComponentStore;
pub use trust::{TrustError, TrustPolicy, Verified};

pub use crate::engine::sha256_digest;

/// The hex part of a `sha256:<hex>` digest, or None when it is not one.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// The tag cosign's fallback scheme gives the signatures of the manifest `digest`:
/// `sha256-<hex>.sig`; with `suffix` "conformance", the conformance report's tag.
pub fn tag_beside(digest: &str, suffix: &str) -> Option<String> {
    digest_hex(digest).map(|hex| format!("sha256-{hex}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_tags_beside_them() {
        let d = sha256_digest(b"ward");
        assert!(digest_hex(&d).is_some());
        assert_eq!(
            tag_beside(&d, "sig").unwrap(),
            format!("sha256-{}.sig", &d[7..])
        );
        assert!(digest_hex("sha256:ABC").is_none());
        assert!(digest_hex("md5:00").is_none());
        assert!(tag_beside("latest", "sig").is_none());
    }
}
