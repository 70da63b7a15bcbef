//! A pipeline's registry components made into verified local files before anything is
//! compiled: each `component: {ref, digest}` is fetched (or found in the store), verified
//! against the trust policy, and its stage pointed at the verified file, with the layer
//! digest the engine checks again when it reads it, and the provenance the job records keep.

use super::client::Registry;
use super::store::ComponentStore;
use super::trust::{fetch_verified, Conformance, TrustError, TrustPolicy};
use crate::pipeline::{ComponentOrigin, Location, Pipeline};

/// A registry component that could not be used, placed in the pipeline file.
#[derive(Debug, thiserror::Error)]
#[error("{location}: operator '{operator}': component {reference}: {source}")]
pub struct ResolveError {
    pub location: Location,
    pub operator: String,
    pub reference: String,
    #[source]
    pub source: TrustError,
}

/// Whether any stage of `pipeline` takes its component from a registry.
pub fn uses_registry(pipeline: &Pipeline) -> bool {
    pipeline
        .stages
        .iter()
        .any(|s| s.component.registry.is_some())
}

/// Verifies every registry component of `pipeline` and points its stage at the verified file.
pub fn resolve_pipeline(
    pipeline: &mut Pipeline,
    registry: &Registry,
    store: &ComponentStore,
    policy: &TrustPolicy,
) -> Result<(), ResolveError> {
    for stage in &mut pipeline.stages {
        let component = &mut stage.component;
        let Some(reg) = &mut component.registry else {
            continue;
        };
        let fail = |source: TrustError| ResolveError {
            location: component.location.clone(),
            operator: stage.name.clone(),
            reference: reg.reference.clone(),
            source,
        };
        let Some(digest) = &reg.manifest_digest else {
            return Err(fail(TrustError::NotPinned {
                reference: reg.reference.clone(),
            }));
        };
        let reference: oci_client::Reference =
            format!("{}@{digest}", reg.reference).parse().map_err(|e| {
                fail(TrustError::NotComponent {
                    reference: reg.reference.clone(),
                    digest: digest.clone(),
                    why: format!("not a valid reference: {e}"),
                })
            })?;
        let verified =
            fetch_verified(registry, store, &reference, policy, &|_, _| {}).map_err(fail)?;
        tracing::info!(operator = %stage.name, reference = %verified.reference,
            manifest = %verified.manifest_digest, signer = %verified.signer, "registry component verified");
        reg.origin = Some(ComponentOrigin {
            reference: verified.reference.clone(),
            manifest_digest: verified.manifest_digest.clone(),
            signer: verified.signer.clone(),
            signer_source: verified.signer_source.clone(),
            vendor: verified.vendor.clone(),
            conformance: match verified.conformance {
                Conformance::Pass { .. } => "pass",
                Conformance::Skipped => "skipped",
                Conformance::None => "none",
            }
            .to_string(),
        });
        component.path = verified.wasm;
        component.digest = Some(verified.layer_digest);
    }
    Ok(())
}
