//! What every registry command shares: the registry configuration, the local component
//! store, and the keys a command trusts.

use anyhow::Context as _;
use std::path::PathBuf;
use ward::registry::{ComponentStore, PublicKey, Registry, RegistryConfig, TrustPolicy};

#[derive(clap::Args, Clone)]
pub struct RegistryArgs {
    /// Registry settings: plain-HTTP hosts, CA certificates, credentials (YAML with
    /// `registries:`). Credentials are also read from a docker config.json.
    #[arg(long, value_name = "FILE", env = "WARD_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// The local content-addressed store of pulled components (default
    /// $XDG_CACHE_HOME/ward/components).
    #[arg(long, value_name = "DIR", env = "WARD_COMPONENT_STORE")]
    pub store: Option<PathBuf>,
    /// Tries of each registry request before an unreachable registry is an error (waits
    /// 0.5 s, then twice as long each time, at most 5 s).
    #[arg(
        long,
        value_name = "N",
        env = "WARD_REGISTRY_ATTEMPTS",
        default_value_t = 4
    )]
    pub registry_attempts: u32,
}

impl RegistryArgs {
    pub fn config(&self) -> anyhow::Result<RegistryConfig> {
        Ok(match &self.registry_config {
            Some(file) => RegistryConfig::load(file)?,
            None => RegistryConfig::from_environment()?,
        })
    }

    pub fn registry(&self) -> anyhow::Result<Registry> {
        Ok(Registry::new(self.config()?)?.with_retries(
            self.registry_attempts,
            std::time::Duration::from_millis(500),
        ))
    }

    pub fn store(&self) -> anyhow::Result<ComponentStore> {
        let root = self
            .store
            .clone()
            .unwrap_or_else(ComponentStore::default_root);
        ComponentStore::open(&root)
            .with_context(|| format!("opening the component store {}", root.display()))
    }
}

/// The policy of `--trust KEY` files (and `--require-conformance`).
pub fn trust_policy(keys: &[PathBuf], require_conformance: bool) -> anyhow::Result<TrustPolicy> {
    let keys = keys
        .iter()
        .map(|k| PublicKey::from_pem_file(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TrustPolicy {
        keys,
        require_conformance,
    })
}

/// Parses `REF` as a registry reference, with the registry host written out.
pub fn parse_reference(text: &str) -> anyhow::Result<oci_client::Reference> {
    let host = text.split('/').next().unwrap_or_default();
    if !text.contains('/') || !(host.contains('.') || host.contains(':') || host == "localhost") {
        anyhow::bail!("'{text}' must be REGISTRY/REPOSITORY[:TAG][@DIGEST] with the registry host written out (e.g. 127.0.0.1:5000/acme/segment:1.0)");
    }
    text.parse()
        .map_err(|e| anyhow::anyhow!("'{text}' is not a valid OCI reference: {e}"))
}
