//! Operations: health, Prometheus metrics, the OpenAPI document, the tenant's audit trail.

use super::{blocking, ApiError, Principal};
use crate::service::config::Role;
use crate::service::{audit, Service};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// The API described in OpenAPI 3; the tests check every route is in it.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn healthz(State(service): State<Arc<Service>>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let version = service.db.schema_version()?;
        Ok(Json(json!({"status": "ok", "schema_version": version})))
    })
    .await
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub async fn metrics(State(service): State<Arc<Service>>) -> Result<Response, ApiError> {
    blocking(move || {
        let mut out = String::new();
        out.push_str("# HELP ward_jobs Jobs by state.\n# TYPE ward_jobs gauge\n");
        let counts = service.db.job_counts()?;
        for state in ["created", "queued", "running", "succeeded", "failed", "cancelled"] {
            let n = counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "ward_jobs{{state=\"{state}\"}} {n}");
        }
        let queued = counts
            .iter()
            .find(|(s, _)| s == "queued")
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "# HELP ward_queue_depth Jobs waiting to run.\n# TYPE ward_queue_depth gauge\nward_queue_depth {queued}"
        );
        let m = service.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP ward_stage_duration_seconds Time stages ran.\n# TYPE ward_stage_duration_seconds summary\nward_stage_duration_seconds_sum {}\nward_stage_duration_seconds_count {}",
            m.stage_seconds_sum, m.stages_finished
        );
        let _ = writeln!(
            out,
            "# HELP ward_payloads_ingested_total Payloads received.\n# TYPE ward_payloads_ingested_total counter\nward_payloads_ingested_total {}\n# HELP ward_ingested_bytes_total Bytes of payloads received.\n# TYPE ward_ingested_bytes_total counter\nward_ingested_bytes_total {}\n# HELP ward_api_requests_total API requests answered.\n# TYPE ward_api_requests_total counter\nward_api_requests_total {}",
            m.payloads_uploaded, m.bytes_uploaded, m.api_requests
        );
        Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
    })
    .await
}

/// The caller's tenant's audit records (admins only).
pub async fn audit(
    State(service): State<Arc<Service>>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Admin)?;
    blocking(move || {
        let records = audit::records(&service.db, &principal.tenant)?;
        Ok(Json(json!({"items": records})))
    })
    .await
}
