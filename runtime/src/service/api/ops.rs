//! Operations: health, Prometheus metrics, the OpenAPI document, the tenant's audit trail.

use super::{blocking, ApiError, MetricsScraper, Principal};
use crate::service::config::Role;
use crate::service::{audit, Service};
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

/// The API described in OpenAPI 3; the tests check every route is in it.
pub const OPENAPI: &str = include_str!("openapi.json");

pub async fn healthz(State(service): State<Arc<Service>>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let version = service.db.schema_version()?;
        let mut health = json!({"status": "ok", "schema_version": version});
        // In cluster mode (embedded mode answers as it always did), where the jobs go and whether the API server answers: the
        // service itself is healthy either way (it keeps accepting and queueing).
        if let Some(link) = service.cluster.get() {
            health["mode"] = json!("cluster");
            health["namespace"] = json!(link.namespace);
            health["kubernetes_api_reachable"] = json!(link.api_reachable());
        }
        Ok(Json(health))
    })
    .await
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Prometheus figures. A `metrics` token sees the node's figures and every tenant's; a
/// tenant's admin sees that tenant's only; other tokens get 403, no token 401.
pub async fn metrics(
    State(service): State<Arc<Service>>,
    req: Request,
) -> Result<Response, ApiError> {
    let node = req.extensions().get::<MetricsScraper>().is_some();
    let tenant = match req.extensions().get::<Principal>() {
        _ if node => None,
        Some(p) => {
            p.require(Role::Admin)?;
            Some(p.tenant.clone())
        }
        None => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/metrics needs a metrics token or a tenant's admin token: Authorization: Bearer <token>",
            ))
        }
    };
    blocking(move || {
        let mut out = String::new();
        if node {
            node_metrics(&service, &mut out)?;
        }
        let by_tenant = service.db.job_counts_by_tenant()?;
        out.push_str(
            "# HELP ward_tenant_jobs Jobs of a tenant by state.\n# TYPE ward_tenant_jobs gauge\n",
        );
        let tenants = service
            .config
            .tenants
            .iter()
            .filter(|t| tenant.as_ref().is_none_or(|name| *name == t.name));
        for t in tenants {
            for state in STATES {
                let n = by_tenant
                    .iter()
                    .find(|(tn, s, _)| *tn == t.name && s == state)
                    .map_or(0, |(_, _, n)| *n);
                let _ = writeln!(
                    out,
                    "ward_tenant_jobs{{tenant=\"{}\",state=\"{state}\"}} {n}",
                    t.name
                );
            }
        }
        Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
    })
    .await
}

const STATES: [&str; 6] = [
    "created",
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
];

/// The figures of the whole node, for `metrics` tokens only.
fn node_metrics(service: &Service, out: &mut String) -> Result<(), ApiError> {
    out.push_str("# HELP ward_jobs Jobs by state.\n# TYPE ward_jobs gauge\n");
    let counts = service.db.job_counts()?;
    for state in STATES {
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
    let m = service.metrics();
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
    let _ = writeln!(
        out,
        "# HELP ward_api_unauthorized_total API requests refused for want of a valid token (401).\n# TYPE ward_api_unauthorized_total counter\nward_api_unauthorized_total {}\n# HELP ward_api_forbidden_total API requests refused to the caller's token (403).\n# TYPE ward_api_forbidden_total counter\nward_api_forbidden_total {}\n# HELP ward_api_connections_refused_total API connections closed because http.max-connections were open.\n# TYPE ward_api_connections_refused_total counter\nward_api_connections_refused_total {}",
        m.api_unauthorized, m.api_forbidden, m.connections_refused
    );
    let _ = writeln!(
        out,
        "# HELP ward_jobs_preempted_total Running jobs ended to make room for a job of higher priority (each queued again).\n# TYPE ward_jobs_preempted_total counter\nward_jobs_preempted_total {}",
        m.jobs_preempted
    );
    let _ = writeln!(
        out,
        "# HELP ward_ingest_paused 1 while the disk is above its high watermark and DIMSE and STOW-RS ingest are refused.\n# TYPE ward_ingest_paused gauge\nward_ingest_paused {}\n# HELP ward_ingest_refused_disk_total Instances and STOW-RS bodies refused for the disk's high watermark.\n# TYPE ward_ingest_refused_disk_total counter\nward_ingest_refused_disk_total {}",
        u8::from(service.disk.refusing()),
        service.disk.refused.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// `GET /v1/audit?after=SEQ&limit=N`.
#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// The most records one page of the audit trail holds, and how many it holds unless asked.
const AUDIT_PAGE_MAX: usize = 1000;
const AUDIT_PAGE_DEFAULT: usize = 100;

/// The caller's tenant's audit records (admins only), oldest first, a page at a time:
/// `limit` records (1-1000, default 100) after record `after`; `next` is the `after` of
/// the following page, null on the last; `last` is the number of the tenant's last record
/// as the page was read. Every call appends a record of its own once answered, so a
/// reader that follows `next` to the end of a trail it adds to should stop at the `last`
/// of its first page.
pub async fn audit(
    State(service): State<Arc<Service>>,
    principal: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Admin)?;
    let after = match q.after.as_deref() {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad-after",
                    format!("after '{text}' must be a record number (the `next` of a page)"),
                )
            })?,
    };
    let limit = match q.limit.as_deref() {
        None => AUDIT_PAGE_DEFAULT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=AUDIT_PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad-limit",
                    format!("limit '{text}' must be from 1 to {AUDIT_PAGE_MAX}"),
                )
            })?,
    };
    blocking(move || {
        // One more than the page: whether there is a next one.
        let mut records = audit::records(&service.db, &principal.tenant, after, limit + 1)?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next = more.then(|| records.last().map(|r| r.seq)).flatten();
        let last = audit::last_record(&service.db, &principal.tenant)?;
        Ok(Json(json!({"items": records, "next": next, "last": last})))
    })
    .await
}
