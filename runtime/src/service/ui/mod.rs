//! The web UI under `/ui`, served by `ward serve` itself: jobs live, a job's graph, stages,
//! logs and results, the render server's viewer, pipelines, DICOM activity and the node.
//! Pages are server-rendered (askama templates in `runtime/templates/ui`); htmx and its SSE
//! extension (vendored, embedded) add live updates, and a small script of Ward's own adds the
//! viewer's keys and drags. Everything works without JavaScript but those.
//!
//! A person signs in with an API token, exchanged for a session cookie (`session`); every
//! page is scoped to the token's tenant and role exactly as the API is — another tenant's
//! job is 404, a viewer's token gets no buttons and its POSTs are refused — and every form
//! carries the session's CSRF token. Responses carry a strict Content-Security-Policy: no
//! inline script or style, nothing from elsewhere.

mod assets;
mod dag;
mod format;
mod jobs;
mod live;
mod pages;
pub mod render;
mod results;
pub mod session;
mod signin;
mod viewer;

use super::api::Principal;
use super::config::Role;
use super::Service;
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// What the UI keeps in memory: sessions and rendered pictures, both bounded.
#[derive(Default)]
pub struct UiState {
    pub sessions: session::Sessions,
    pub renders: render::RenderCache,
}

/// The Content-Security-Policy of every UI response: scripts, styles, images and event
/// streams from this origin only, no inline script or style, no frames, forms only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A signed-in request: its session (principal and CSRF token).
pub struct Signed(pub session::Session);

/// Why a request is not served: not signed in (to the sign-in page), or an error page.
pub enum UiError {
    SignIn,
    Page(StatusCode, String),
}

impl UiError {
    pub fn not_found(what: &str) -> UiError {
        UiError::Page(StatusCode::NOT_FOUND, format!("No {what} here."))
    }

    pub fn forbidden(why: impl Into<String>) -> UiError {
        UiError::Page(StatusCode::FORBIDDEN, why.into())
    }

    pub fn internal(e: impl std::fmt::Display) -> UiError {
        tracing::error!(error = %e, "the UI failed");
        UiError::Page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The service failed; see its log.".into(),
        )
    }
}

impl From<super::db::DbError> for UiError {
    fn from(e: super::db::DbError) -> UiError {
        UiError::internal(e)
    }
}

impl From<super::api::ApiError> for UiError {
    fn from(e: super::api::ApiError) -> UiError {
        UiError::Page(e.status, e.message)
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn => Redirect::to("/ui/login").into_response(),
            UiError::Page(status, text) => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = format!(
                    "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Ward</title>\
                     <link rel=\"stylesheet\" href=\"/ui/static/ward.css\"></head><body>\
                     <p class=\"banner\" role=\"note\">Not for diagnostic use.</p><main id=\"main\">\
                     <h1>{} {title}</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/ui/jobs\">Jobs</a></p></main></body></html>",
                    status.as_u16(),
                    format::escape(&text)
                );
                (status, Html(body)).into_response()
            }
        }
    }
}

impl FromRequestParts<Arc<Service>> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Self::Rejection> {
        service
            .ui
            .sessions
            .resolve(service, &parts.headers)
            .map(Signed)
            .ok_or(UiError::SignIn)
    }
}

impl Signed {
    pub fn principal(&self) -> &Principal {
        &self.0.principal
    }

    /// Refuses unless the session's CSRF token is `given` and its role at least `role`.
    pub fn check_post(&self, given: &str, role: Role) -> Result<(), UiError> {
        if !session::same_secret(given, &self.0.csrf) {
            return Err(UiError::forbidden(
                "The form's CSRF token is not this session's: reload the page and try again.",
            ));
        }
        if self.0.principal.role < role {
            return Err(UiError::forbidden(format!(
                "This needs the {} role; token '{}' has {}.",
                role_name(role),
                self.0.principal.name,
                role_name(self.0.principal.role)
            )));
        }
        Ok(())
    }

    /// What every page's frame shows.
    pub fn chrome(&self, service: &Service, nav: &'static str) -> Chrome {
        Chrome {
            tenant: self.0.principal.tenant.clone(),
            principal: self.0.principal.name.clone(),
            role: role_name(self.0.principal.role),
            csrf: self.0.csrf.clone(),
            nav,
            version: env!("CARGO_PKG_VERSION"),
            health: health(service),
        }
    }
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

fn health(service: &Service) -> &'static str {
    match service.db.schema_version() {
        Ok(_) => match service.cluster.get() {
            Some(link) if !link.api_reachable() => "ok (Kubernetes API not answering)",
            _ => "ok",
        },
        Err(_) => "the state database does not answer",
    }
}

/// The frame of every page.
pub struct Chrome {
    pub tenant: String,
    pub principal: String,
    pub role: &'static str,
    pub csrf: String,
    pub nav: &'static str,
    pub version: &'static str,
    pub health: &'static str,
}

/// Renders a template as a page.
pub fn page(t: &impl askama::Template) -> Result<Response, UiError> {
    let body = t.render().map_err(UiError::internal)?;
    Ok(Html(body).into_response())
}

/// Security headers on every UI response; pages (not images or scripts) are not cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let is_page = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_page && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The UI's routes (merged beside the API's, outside its bearer-token layer).
pub fn router() -> Router<Arc<Service>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/jobs") }))
        .route("/ui/login", get(signin::form).post(signin::sign_in))
        .route("/ui/logout", axum::routing::post(signin::sign_out))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/rows", get(jobs::rows))
        .route("/ui/events", get(live::jobs))
        .route("/ui/jobs/{id}", get(jobs::show))
        .route("/ui/jobs/{id}/stages", get(jobs::stages))
        .route("/ui/jobs/{id}/events", get(live::job))
        .route("/ui/jobs/{id}/dag.svg", get(jobs::dag_svg))
        .route(
            "/ui/jobs/{id}/cancel",
            get(jobs::confirm_cancel).post(jobs::cancel),
        )
        .route(
            "/ui/jobs/{id}/start",
            get(jobs::confirm_start).post(jobs::start),
        )
        .route("/ui/jobs/{id}/logs/{stage}", get(jobs::log))
        .route(
            "/ui/jobs/{id}/logs/{stage}/download",
            get(jobs::log_download),
        )
        .route("/ui/jobs/{id}/logs/{stage}/events", get(live::log))
        .route("/ui/jobs/{id}/results", get(results::root))
        .route("/ui/jobs/{id}/results/{*path}", get(results::browse))
        .route("/ui/jobs/{id}/view/{stage}/{output}", get(viewer::show))
        .route(
            "/ui/jobs/{id}/render/{stage}/{output}/{view}",
            get(viewer::image),
        )
        .route("/ui/pipelines", get(pages::pipelines))
        .route("/ui/dicom", get(pages::dicom))
        .route("/ui/system", get(pages::system))
        .layer(axum::middleware::from_fn(security_headers))
}
