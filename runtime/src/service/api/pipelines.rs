//! `/v1/pipelines`: versioned pipeline definitions, validated when stored.

use super::{blocking, ApiError, Principal};
use crate::service::components::{pin_tags, verify, Refusal};
use crate::service::config::Role;
use crate::service::worker::stored_pipeline;
use crate::service::Service;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// The body is the pipeline file (YAML); each upload of a name is a new version.
pub async fn create(
    State(service): State<Arc<Service>>,
    principal: Principal,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(Role::Operator)?;
    blocking(move || {
        let name = crate::pipeline::parse(std::path::Path::new("pipeline.yaml"), &body)
            .map(|p| p.name)
            .or_else(|e| {
                // A pipeline whose components are not found relative to the default place
                // still names itself; its full check is below.
                first_name(&body).ok_or(e.to_string())
            })
            .map_err(|why| ApiError::bad_request("invalid-pipeline", why))?;
        let mut pipeline = stored_pipeline(&service, &name, &body)
            .map_err(|why| ApiError::bad_request("invalid-pipeline", why))?;
        // Tags are pinned now and kept with this version; the components must verify against
        // the creating tenant's keys, or nothing is stored.
        let pins = pin_tags(&service.components.registry, &mut pipeline).map_err(refused)?;
        verify(&service, &principal.tenant, &mut pipeline, None).map_err(refused)?;
        let row = service
            .db
            .add_pinned_pipeline(&principal.tenant, &name, &body, &pins)?;
        service.audit(
            &principal.tenant,
            &principal.name,
            "pipeline.created",
            &format!("{}:{}", row.name, row.version),
            "",
        );
        Ok((StatusCode::CREATED, Json(json!(row))))
    })
    .await
}

/// A registry component that may not be used: 422, naming the check that failed.
fn refused(refusal: Refusal) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "component-refused",
        refusal.to_string(),
    );
    e.check = Some(refusal.check);
    e
}

/// The `name:` of a pipeline file, read without validating the rest.
fn first_name(yaml: &str) -> Option<String> {
    yaml.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|n| n.trim().trim_matches(['"', '\'']).to_string())
        .filter(|n| !n.is_empty())
}

pub async fn list(
    State(service): State<Arc<Service>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let rows = service.db.pipelines(&principal.tenant)?;
        Ok(Json(json!({ "items": rows })))
    })
    .await
}

pub async fn describe(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let row = service
            .db
            .pipeline(&principal.tenant, &reference)?
            .ok_or_else(|| ApiError::not_found("pipeline", &reference))?;
        let mut v = json!(row);
        v["yaml"] = json!(row.yaml);
        v["pins"] = json!(service.db.pins(row.id)?);
        Ok(Json(v))
    })
    .await
}
