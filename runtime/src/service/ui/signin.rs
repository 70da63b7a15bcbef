//! Signing in (an API token for a session cookie) and out.

use super::session::{self, LOGIN_COOKIE};
use super::{page, Signed, UiError};
use crate::service::Service;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
}

/// Cookies are `Secure` when the service speaks HTTPS.
fn secure(service: &Service) -> bool {
    service.config.tls.is_some()
}

/// The sign-in form, with a CSRF token of its own in a cookie (there is no session yet).
pub async fn form(State(service): State<Arc<Service>>) -> Result<Response, UiError> {
    login_page(&service, None, StatusCode::OK)
}

fn login_page(
    service: &Service,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, UiError> {
    let csrf = session::random_token();
    let mut response = page(&LoginPage {
        csrf: csrf.clone(),
        error,
    })?;
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_COOKIE, &csrf, secure(service), Some(600))
            .parse()
            .expect("a cookie is a header value"),
    );
    Ok(response)
}

/// The address a request came from, where the server recorded it.
pub struct Peer(Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[derive(Deserialize)]
pub struct SignIn {
    token: String,
    csrf: String,
}

pub async fn sign_in(
    State(service): State<Arc<Service>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Result<Response, UiError> {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_secret(expected, &form.csrf) {
        return login_page(
            &service,
            Some("The sign-in form has expired: sign in again.".into()),
            StatusCode::FORBIDDEN,
        );
    }
    if service.ui.sessions.sign_in_refused(peer) {
        tracing::warn!(source = ?peer, "UI sign-in refused: too many failed sign-ins from this address");
        return login_page(
            &service,
            Some("Too many failed sign-ins from this address: wait a minute.".into()),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let hash = crate::service::config::token_hash(form.token.trim());
    let Some(principal) = crate::service::api::principal_of_hash(&service, &hash) else {
        service.ui.sessions.sign_in_failed(peer);
        // The token is never logged; the source address is.
        tracing::warn!(source = ?peer, "UI sign-in refused: not a valid, unexpired token");
        return login_page(
            &service,
            Some("That is not a valid, unexpired API token.".into()),
            StatusCode::UNAUTHORIZED,
        );
    };
    let id = service.ui.sessions.create(hash);
    let s = service.clone();
    let p = principal.clone();
    let _ = tokio::task::spawn_blocking(move || s.audit(&p.tenant, &p.name, "ui.sign-in", "-", ""))
        .await;
    tracing::info!(tenant = %principal.tenant, principal = %principal.name, "UI sign-in");
    let mut response = Redirect::to("/ui/jobs").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, &id, secure(&service), None)
            .parse()
            .expect("a cookie is a header value"),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(LOGIN_COOKIE, "", secure(&service), Some(0))
            .parse()
            .expect("a cookie is a header value"),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn sign_out(
    State(service): State<Arc<Service>>,
    signed: Signed,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    signed.check_post(&form.csrf, crate::service::config::Role::Viewer)?;
    service.ui.sessions.end(&signed.0.id);
    let p = signed.0.principal.clone();
    let s = service.clone();
    let _ =
        tokio::task::spawn_blocking(move || s.audit(&p.tenant, &p.name, "ui.sign-out", "-", ""))
            .await;
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE, "", secure(&service), Some(0))
            .parse()
            .expect("a cookie is a header value"),
    );
    Ok(response)
}
