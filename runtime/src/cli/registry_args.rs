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

/// What `ward run` and `ward validate` take for a pipeline's registry components.
#[derive(clap::Args)]
pub struct TrustArgs {
    /// A vendor's public key (PEM): registry components signed by it may run. Repeat for
    /// several; a pipeline with registry components needs at least one.
    #[arg(long = "trust", value_name = "KEY")]
    pub trust: Vec<PathBuf>,
    /// Registry components must carry a passing conformance verdict.
    #[arg(long)]
    pub require_conformance: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl TrustArgs {
    /// Verifies `pipeline`'s registry components (if it has any) and points its stages at
    /// the verified files. The outer error is Ward's own (a key file, the store); the inner
    /// one is a component refused.
    pub fn resolve(
        &self,
        pipeline: &mut ward::pipeline::Pipeline,
    ) -> anyhow::Result<Result<(), ward::registry::resolve::ResolveError>> {
        if !ward::registry::resolve::uses_registry(pipeline) {
            return Ok(Ok(()));
        }
        let policy = trust_policy(&self.trust, self.require_conformance)?;
        let registry = self.registry.registry()?;
        let store = self.registry.store()?;
        Ok(ward::registry::resolve::resolve_pipeline(
            pipeline, &registry, &store, &policy,
        ))
    }
}
