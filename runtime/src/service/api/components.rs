//! `/v1/components`: the registry components the caller's tenant's stored pipelines pin,
//! who signed each, its conformance verdict, and when jobs first and last used it.

use super::{blocking, ApiError, Principal};
use crate::service::Service;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn list(
    State(service): State<Arc<Service>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let rows = service.db.components(&principal.tenant)?;
        Ok(Json(json!({ "items": rows })))
    })
    .await
}
