//! Registry components under `ward serve`: a tag is pinned to its manifest digest when a
//! pipeline is stored (the pin is kept with that version, so moving the tag later changes
//! nothing it runs), and every use — storing the pipeline, each job attempt — verifies the
//! component against the trust policy of the tenant using it, before anything is compiled.
//! One tenant's keys never count for another.

use super::db::{self, Pin};
use super::Service;
use crate::pipeline::Pipeline;
use crate::registry::resolve::{resolve_pipeline, uses_registry};
use crate::registry::{ComponentStore, Registry, RegistryConfig};

/// The service's registry client and local component store, shared by every job.
pub struct Components {
    pub registry: Registry,
    pub store: ComponentStore,
}

#[derive(Debug, thiserror::Error)]
pub enum ComponentsSetupError {
    #[error("registry configuration: {0}")]
    Config(#[from] crate::registry::RegistryConfigError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Store(#[from] crate::registry::store::StoreError),
}

impl Components {
    pub fn open(config: &super::config::ServeConfig) -> Result<Components, ComponentsSetupError> {
        let registry_config = match &config.registry_config {
            Some(file) => RegistryConfig::load(file)?,
            // A service that names no registry configuration must still start when the
            // docker credentials beside it are unreadable: they are only a fallback.
            None => RegistryConfig::from_environment().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "registry credentials not read; registries are reached anonymously");
                RegistryConfig::default()
            }),
        };
        Ok(Components {
            registry: Registry::new(registry_config)?,
            store: ComponentStore::open(&config.component_store)?,
        })
    }
}

/// A registry component that may not be used, and the check that refused it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `signature`, `manifest-digest`, `layer-digest`, `conformance`, `artifact`, `pin` or
    /// `fetch` (as [`crate::registry::TrustError::check`] names them).
    pub check: &'static str,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Most trust errors say "<check> check failed" themselves.
        if self
            .message
            .contains(&format!("{} check failed", self.check))
        {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} check failed: {}", self.check, self.message)
        }
    }
}

/// Pins every registry component of `pipeline` that gives only a tag to the manifest digest
/// the tag names now, and returns the pins of all its registry components.
pub fn pin_tags(registry: &Registry, pipeline: &mut Pipeline) -> Result<Vec<Pin>, Refusal> {
    let mut pins = Vec::new();
    for stage in &mut pipeline.stages {
        let location = stage.component.location.clone();
        let Some(reg) = &mut stage.component.registry else {
            continue;
        };
        if reg.manifest_digest.is_none() {
            let refuse = |why: String| Refusal {
                check: "pin",
                message: format!(
                    "{location}: operator '{}': component {}: cannot pin its tag: {why}",
                    stage.name, reg.reference
                ),
            };
            let reference: oci_client::Reference =
                reg.reference.parse().map_err(|e| refuse(format!("{e}")))?;
            let digest = registry
                .resolve(&reference)
                .map_err(|e| refuse(e.to_string()))?;
            tracing::info!(operator = %stage.name, reference = %reg.reference, %digest, "registry tag pinned");
            reg.manifest_digest = Some(digest);
        }
        pins.push(Pin {
            operator: stage.name.clone(),
            reference: reg.reference.clone(),
            manifest_digest: reg.manifest_digest.clone().expect("pinned above"),
        });
    }
    Ok(pins)
}

/// Applies the pins stored with a pipeline version to the components that give only a tag.
pub fn apply_pins(pipeline: &mut Pipeline, pins: &[Pin]) {
    for stage in &mut pipeline.stages {
        let Some(reg) = &mut stage.component.registry else {
            continue;
        };
        if reg.manifest_digest.is_some() {
            continue;
        }
        if let Some(pin) = pins
            .iter()
            .find(|p| p.operator == stage.name && p.reference == reg.reference)
        {
            reg.manifest_digest = Some(pin.manifest_digest.clone());
        }
    }
}

/// Verifies `pipeline`'s registry components against `tenant`'s trust policy and points its
/// stages at the verified files; records who signed each and, for a job, `used` (its start).
pub fn verify(
    service: &Service,
    tenant: &str,
    pipeline: &mut Pipeline,
    used: Option<f64>,
) -> Result<(), Refusal> {
    if !uses_registry(pipeline) {
        return Ok(());
    }
    let policy = service
        .config
        .tenant(tenant)
        .map(|t| t.trust.clone())
        .unwrap_or_default();
    let components = &service.components;
    resolve_pipeline(pipeline, &components.registry, &components.store, &policy).map_err(|e| {
        Refusal {
            check: e.source.check(),
            message: e.to_string(),
        }
    })?;
    for stage in &pipeline.stages {
        let Some(reg) = &stage.component.registry else {
            continue;
        };
        let Some(origin) = &reg.origin else { continue };
        if let Err(e) = service.db.record_component(
            tenant,
            &reg.reference,
            &origin.manifest_digest,
            &origin.signer,
            &origin.conformance,
            used,
        ) {
            tracing::error!(error = %e, reference = %reg.reference, "cannot record the component's use");
        }
    }
    Ok(())
}

/// The stored pipeline version `row` with its pins applied (its components not yet verified).
pub fn pinned(service: &Service, row: &db::PipelineRow) -> Result<Pipeline, String> {
    let mut pipeline = super::worker::stored_pipeline(service, &row.name, &row.yaml)?;
    if uses_registry(&pipeline) {
        let pins = service.db.pins(row.id).map_err(|e| e.to_string())?;
        apply_pins(&mut pipeline, &pins);
    }
    Ok(pipeline)
}
