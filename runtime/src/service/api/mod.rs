//! The REST API: every route under `/v1` is scoped to the tenant of the caller's token
//! (another tenant's object answers 404, as if it did not exist), errors are JSON with a
//! stable code, and every call lands in the audit trail: one record per call of a valid
//! token; refused calls (401, 403) and calls without a valid token are counted in
//! `/metrics` and recorded at most once a minute per source (see `refusals`).

mod components;
pub mod jobs;
mod ops;
mod payloads;
mod pipelines;
pub mod refusals;
mod stow;
mod streams;

use super::config::Role;
use super::Service;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{request::Parts, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Who is calling: a token of a tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// Fails with 403 unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {role:?} role; token '{}' has {:?}",
                    self.name, self.role
                )
                .to_lowercase(),
            ))
        }
    }
}

/// An error as the API answers it: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For a refused registry component: the check that failed (`signature`, …).
    pub check: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            check: None,
        }
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no {what} '{id}'"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed; see its log",
        )
    }
}

impl From<super::db::DbError> for ApiError {
    fn from(e: super::db::DbError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        if let Some(check) = self.check {
            body["error"]["check"] = check.into();
        }
        (self.status, Json(body)).into_response()
    }
}

impl FromRequestParts<Arc<Service>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _service: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid, unexpired token is needed: Authorization: Bearer <token>",
            )
        })
    }
}

/// A caller with a `metrics` token: may read the whole node's `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsScraper {
    pub name: String,
}

/// The bearer token of a request, if any.
fn bearer(req: &Request) -> Option<&str> {
    let header = req.headers().get(axum::http::header::AUTHORIZATION)?;
    Some(header.to_str().ok()?.strip_prefix("Bearer ")?.trim())
}

/// The metrics scraper whose token the request carries.
fn scraper_of(service: &Service, req: &Request) -> Option<MetricsScraper> {
    let hash = super::config::token_hash(bearer(req)?);
    service
        .config
        .metrics_tokens
        .iter()
        .find(|k| k.sha256 == hash)
        .map(|k| MetricsScraper {
            name: k.name.clone(),
        })
}

/// The caller's principal, from the bearer token (compared by its SHA-256; the token itself
/// is never stored or logged).
fn principal_of(service: &Service, req: &Request) -> Option<Principal> {
    principal_of_hash(service, &super::config::token_hash(bearer(req)?))
}

/// The principal of the token whose SHA-256 is `hash`, if it is one of the configuration's
/// and unexpired (the UI's sessions hold the hash and ask again on every request).
pub fn principal_of_hash(service: &Service, hash: &str) -> Option<Principal> {
    let now = super::db::now();
    // An expired token is no principal.
    service.config.tenants.iter().find_map(|t| {
        t.tokens
            .iter()
            .find(|k| k.sha256 == hash && k.expires.is_none_or(|e| now < e))
            .map(|k| Principal {
                tenant: t.name.clone(),
                name: k.name.clone(),
                role: k.role,
            })
    })
}

/// Resolves the caller, runs the call, and records it in the audit trail.
async fn authenticate_and_audit(
    State(service): State<Arc<Service>>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = principal_of(&service, &req);
    let scraper = scraper_of(&service, &req);
    let action = format!("{} {}", req.method(), req.uri().path());
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    // Probes and scrapes (every few seconds) would drown the trail; they change nothing.
    let probe = matches!(req.uri().path(), "/healthz" | "/metrics" | "/openapi.json");
    if let Some(p) = &principal {
        req.extensions_mut().insert(p.clone());
    }
    if let Some(s) = &scraper {
        req.extensions_mut().insert(s.clone());
    }
    let response = next.run(req).await;
    let status = response.status();
    {
        let mut m = service.metrics();
        m.api_requests += 1;
        match status {
            StatusCode::UNAUTHORIZED => m.api_unauthorized += 1,
            StatusCode::FORBIDDEN => m.api_forbidden += 1,
            _ => {}
        }
    }
    let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
    if probe && !refused {
        return response;
    }
    let (tenant, name) = principal
        .as_ref()
        .map_or(("-", "anonymous"), |p| (p.tenant.as_str(), p.name.as_str()));
    let (tenant, name) = (tenant.to_string(), name.to_string());
    let service2 = service.clone();
    if refused || principal.is_none() {
        let source = refusals::Source {
            address,
            tenant,
            principal: name,
            status: status.as_u16(),
        };
        if let Some(due) = service
            .refusals
            .refused(source, &action, std::time::Instant::now())
        {
            let _ = tokio::task::spawn_blocking(move || due.record(&service2)).await;
        }
        return response;
    }
    let status = status.as_u16().to_string();
    // SQLite work off the async threads.
    let _ = tokio::task::spawn_blocking(move || {
        service2.audit(&tenant, &name, "api", &action, &status)
    })
    .await;
    response
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route(
            "/v1/pipelines",
            post(pipelines::create).get(pipelines::list),
        )
        .route("/v1/pipelines/{reference}", get(pipelines::describe))
        .route("/v1/components", get(components::list))
        .route("/v1/payloads", post(payloads::upload).get(payloads::list))
        .route("/v1/payloads/{id}", get(payloads::describe))
        .route("/v1/payloads/{id}/archive", get(payloads::download))
        .route("/v1/datasets", get(payloads::list_datasets))
        .route("/v1/datasets/{name}", post(payloads::upload_dataset))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::describe))
        .route("/v1/jobs/{id}/start", post(jobs::start))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/jobs/{id}/results", get(jobs::results))
        .route("/v1/audit", get(ops::audit))
        .route("/v1/dicomweb/studies", post(stow::store))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            authenticate_and_audit,
        ))
        // The web UI: signed in by its session cookie, not by the API's bearer token.
        .merge(super::ui::router())
        .with_state(service)
}

/// Runs blocking work (SQLite, files) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
