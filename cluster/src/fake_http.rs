//! An HTTP front of the FAKE API server ([`FakeApiServer`]), for tests and the simulation:
//! it serves exactly the REST subset [`crate::KubeApi`] uses, so a real `kube::Client` — and
//! real `ward node` / `ward serve --cluster` processes given a kubeconfig from
//! [`write_kubeconfig`] — can talk to the fake over plain `http://127.0.0.1:PORT`.
//!
//! Served: `wardjobs` list, watch, create, get, update, merge patch, and the same on
//! `wardjobs/{name}/status` (bar create); `wardpipelines` get and create; `leases` list,
//! watch (with `labelSelector`), create, get and update. A list carries the version it was
//! taken at; a watch streams newline-delimited `ADDED`/`MODIFIED` events from the version
//! asked for (replayed from the fake's history), a `BOOKMARK` each minute and before it
//! ends at `timeoutSeconds` when `allowWatchBookmarks` is asked, and an `ERROR` event with
//! a 410 `Expired` Status when that version is older than the history reaches. Errors are
//! `Status` bodies as Kubernetes sends them (reason `Conflict`, `AlreadyExists`,
//! `NotFound`, ...).
//!
//! The caller each request is counted under ([`crate::fake::Requests`]) is the bearer
//! token: [`kubeconfig`] gives each caller its own, equal to its name; a request without
//! one is counted as `system:anonymous`. The FAKE keeps one set of objects for all
//! namespaces: the namespace in a path is given to objects created there, and not checked
//! otherwise.

// The helpers that refuse a request return the HTTP answer itself as their error, to be
// handed straight back by the handler: its size is no cost worth boxing for.
#![allow(clippy::result_large_err)]
use crate::api::{ApiError, ClusterApi};
use crate::fake::{Change, FakeApiServer, FakeClient, WatchFrom, WatchStep, WatchedKind};
use crate::resources::{WardJob, WardPipeline};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

/// The caller of a request that carries no bearer token.
pub const ANONYMOUS: &str = "system:anonymous";
/// How long a watch without `timeoutSeconds` stays open.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often an open watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Serves the FAKE API server's HTTP front on `listener` until the listener fails.
pub async fn serve(
    server: FakeApiServer,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(server)).await
}

/// The HTTP front's routes, for a caller that serves them itself.
pub fn router(server: FakeApiServer) -> Router {
    const WARD: &str = "/apis/ward.dev/v1alpha1/namespaces/{ns}";
    const COORDINATION: &str = "/apis/coordination.k8s.io/v1/namespaces/{ns}";
    Router::new()
        .route(
            &format!("{WARD}/wardjobs"),
            get(list_or_watch::<WardJob>).post(create_job),
        )
        .route(
            &format!("{WARD}/wardjobs/{{name}}"),
            get(get_job).put(replace_job).patch(patch_job),
        )
        .route(
            &format!("{WARD}/wardjobs/{{name}}/status"),
            get(get_job_status)
                .put(replace_job_status)
                .patch(patch_job_status),
        )
        .route(
            &format!("{WARD}/wardpipelines"),
            axum::routing::post(create_pipeline),
        )
        .route(&format!("{WARD}/wardpipelines/{{name}}"), get(get_pipeline))
        .route(
            &format!("{COORDINATION}/leases"),
            get(list_or_watch::<Lease>).post(create_lease),
        )
        .route(
            &format!("{COORDINATION}/leases/{{name}}"),
            get(get_lease).put(replace_lease),
        )
        .fallback(|| async {
            status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource (the FAKE API server serves only what Ward uses)".into(),
            )
        })
        .with_state(server)
}

/// A kubeconfig for `caller`: the FAKE API server at `server_url` (`http://127.0.0.1:PORT`),
/// `namespace` as the default, and the caller's name as its bearer token, which is how the
/// fake tells callers apart.
pub fn kubeconfig(server_url: &str, caller: &str, namespace: &str) -> String {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "ward-fake", "cluster": { "server": server_url } }],
        "users": [{ "name": caller, "user": { "token": caller } }],
        "contexts": [{
            "name": "ward-fake",
            "context": { "cluster": "ward-fake", "user": caller, "namespace": namespace },
        }],
        "current-context": "ward-fake",
    });
    serde_yaml_ng::to_string(&config).expect("a kubeconfig serialises")
}

/// Writes [`kubeconfig`] to `path`.
pub fn write_kubeconfig(
    path: &std::path::Path,
    server_url: &str,
    caller: &str,
    namespace: &str,
) -> std::io::Result<()> {
    std::fs::write(path, kubeconfig(server_url, caller, namespace))
}

/// Why [`kube_client`] could not make a client.
#[derive(Debug, thiserror::Error)]
pub enum FakeKubeconfigError {
    #[error("the FAKE API server's kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("a client for the FAKE API server: {0}")]
    Client(#[from] kube::Error),
}

/// A real `kube::Client` for the FAKE API server at `server_url`, calling as `caller`.
pub async fn kube_client(
    server_url: &str,
    caller: &str,
    namespace: &str,
) -> Result<kube::Client, FakeKubeconfigError> {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&kubeconfig(server_url, caller, namespace))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

fn client(server: &FakeApiServer, headers: &HeaderMap) -> FakeClient {
    let caller = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or(ANONYMOUS);
    server.client(caller)
}

/// A resource as Kubernetes names it in messages (`wardjobs.ward.dev`).
#[derive(Clone, Copy)]
struct Resource {
    plural: &'static str,
    group: &'static str,
}

const JOBS: Resource = Resource {
    plural: "wardjobs",
    group: "ward.dev",
};
const PIPELINES: Resource = Resource {
    plural: "wardpipelines",
    group: "ward.dev",
};
const LEASES: Resource = Resource {
    plural: "leases",
    group: "coordination.k8s.io",
};

/// A Kubernetes `Status` answer.
fn status(code: StatusCode, reason: &str, message: String) -> Response {
    status_with(code, reason, message, None)
}

fn status_body(
    code: StatusCode,
    reason: &str,
    message: String,
    details: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    body
}

fn status_with(
    code: StatusCode,
    reason: &str,
    message: String,
    details: Option<serde_json::Value>,
) -> Response {
    json_response(code, &status_body(code, reason, message, details))
}

fn json_response(code: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("an answer serialises");
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// The API server's answer to an [`ApiError`] about `name` of `resource`.
fn error_response(err: ApiError, resource: Resource, name: &str) -> Response {
    let Resource { plural, group } = resource;
    let details = Some(serde_json::json!({ "name": name, "group": group, "kind": plural }));
    match err {
        ApiError::Conflict(_) => status_with(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
            details,
        ),
        ApiError::AlreadyExists(_) => status_with(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{plural}.{group} \"{name}\" already exists"),
            details,
        ),
        ApiError::NotFound(_) => status_with(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural}.{group} \"{name}\" not found"),
            details,
        ),
        ApiError::Other(message) => {
            status_with(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message, details)
        }
    }
}

fn answer<K: Serialize>(
    result: Result<K, ApiError>,
    code: StatusCode,
    resource: Resource,
    name: &str,
) -> Response {
    match result {
        Ok(object) => json_response(code, &object),
        Err(err) => error_response(err, resource, name),
    }
}

fn bad_request(message: String) -> Response {
    status(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// A request body as a `K`, or the 400 the API server would answer.
fn parse<K: serde::de::DeserializeOwned>(body: &Bytes) -> Result<K, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("the request body could not be read: {e}")))
}

/// A patch body, refused unless it is a JSON merge patch (the only kind Ward sends).
fn parse_merge_patch(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Value, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/merge-patch+json") {
        return Err(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the FAKE API server takes merge patches only, not {content_type:?}"),
        ));
    }
    parse(body)
}

/// A body whose name differs from the path's is refused, as the API server does.
fn check_name(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    name: &str,
) -> Result<(), Response> {
    match meta.name.as_deref() {
        Some(n) if n == name => Ok(()),
        other => Err(bad_request(format!(
            "the name of the object ({other:?}) does not match the name on the URL ({name:?})"
        ))),
    }
}

/// Gives a created object the path's namespace, refusing a body that names another.
fn place_in(
    meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
) -> Result<(), Response> {
    match meta.namespace.as_deref() {
        None => {
            meta.namespace = Some(namespace.to_string());
            Ok(())
        }
        Some(n) if n == namespace => Ok(()),
        Some(n) => Err(bad_request(format!(
            "the namespace of the provided object ({n}) does not match the namespace sent on the request ({namespace})"
        ))),
    }
}

type Params = Query<HashMap<String, String>>;

async fn create_job(
    State(server): State<FakeApiServer>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut job: WardJob = match parse(&body) {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Err(response) = place_in(&mut job.metadata, &ns) {
        return response;
    }
    let name = job.metadata.name.clone().unwrap_or_default();
    answer(
        client(&server, &headers).create_job(&job).await,
        StatusCode::CREATED,
        JOBS,
        &name,
    )
}

async fn get_job(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        client(&server, &headers).get_job(&name).await,
        StatusCode::OK,
        JOBS,
        &name,
    )
}

async fn replace_job(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let job: WardJob = match parse(&body) {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Err(response) = check_name(&job.metadata, &name) {
        return response;
    }
    answer(
        client(&server, &headers).replace_job(&job),
        StatusCode::OK,
        JOBS,
        &name,
    )
}

async fn patch_job(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse_merge_patch(&headers, &body) {
        Ok(patch) => answer(
            client(&server, &headers).merge_patch_job(&name, &patch),
            StatusCode::OK,
            JOBS,
            &name,
        ),
        Err(response) => response,
    }
}

async fn get_job_status(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        client(&server, &headers).get_job_status(&name),
        StatusCode::OK,
        JOBS,
        &name,
    )
}

async fn replace_job_status(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let job: WardJob = match parse(&body) {
        Ok(job) => job,
        Err(response) => return response,
    };
    if let Err(response) = check_name(&job.metadata, &name) {
        return response;
    }
    answer(
        client(&server, &headers).replace_job_status(&job).await,
        StatusCode::OK,
        JOBS,
        &name,
    )
}

async fn patch_job_status(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match parse_merge_patch(&headers, &body) {
        Ok(patch) => answer(
            client(&server, &headers).merge_patch_job_status(&name, &patch),
            StatusCode::OK,
            JOBS,
            &name,
        ),
        Err(response) => response,
    }
}

async fn create_pipeline(
    State(server): State<FakeApiServer>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut pipeline: WardPipeline = match parse(&body) {
        Ok(pipeline) => pipeline,
        Err(response) => return response,
    };
    if let Err(response) = place_in(&mut pipeline.metadata, &ns) {
        return response;
    }
    let name = pipeline.metadata.name.clone().unwrap_or_default();
    answer(
        client(&server, &headers).create_pipeline(&pipeline).await,
        StatusCode::CREATED,
        PIPELINES,
        &name,
    )
}

async fn get_pipeline(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(
        client(&server, &headers).get_pipeline(&name).await,
        StatusCode::OK,
        PIPELINES,
        &name,
    )
}

async fn create_lease(
    State(server): State<FakeApiServer>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut lease: Lease = match parse(&body) {
        Ok(lease) => lease,
        Err(response) => return response,
    };
    if let Err(response) = place_in(&mut lease.metadata, &ns) {
        return response;
    }
    let name = lease.metadata.name.clone().unwrap_or_default();
    answer(
        client(&server, &headers).create_lease(&lease).await,
        StatusCode::CREATED,
        LEASES,
        &name,
    )
}

async fn get_lease(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = client(&server, &headers)
        .get_lease(&name)
        .await
        .and_then(|lease| lease.ok_or_else(|| ApiError::NotFound(format!("leases/{name}"))));
    answer(result, StatusCode::OK, LEASES, &name)
}

async fn replace_lease(
    State(server): State<FakeApiServer>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let lease: Lease = match parse(&body) {
        Ok(lease) => lease,
        Err(response) => return response,
    };
    if let Err(response) = check_name(&lease.metadata, &name) {
        return response;
    }
    answer(
        client(&server, &headers).replace_lease(&lease).await,
        StatusCode::OK,
        LEASES,
        &name,
    )
}

/// One requirement of a label selector.
enum Requirement {
    Exists(String),
    Absent(String),
    Equals(String, String),
    Differs(String, String),
}

/// A `labelSelector` (equality-based requirements only: `k`, `!k`, `k=v`, `k==v`, `k!=v`).
fn parse_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    let mut requirements = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let requirement = if let Some((k, v)) = part.split_once("!=") {
            Requirement::Differs(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            Requirement::Equals(k.trim().into(), v.trim().into())
        } else if let Some(k) = part.strip_prefix('!') {
            Requirement::Absent(k.trim().into())
        } else if part.contains(' ') || part.contains('(') {
            return Err(format!(
                "the FAKE API server understands equality-based label selectors only, not {part:?}"
            ));
        } else {
            Requirement::Exists(part.into())
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn selected<K: kube::Resource>(object: &K, selector: &[Requirement]) -> bool {
    let labels = object.meta().labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k));
    selector.iter().all(|r| match r {
        Requirement::Exists(k) => label(k).is_some(),
        Requirement::Absent(k) => label(k).is_none(),
        Requirement::Equals(k, v) => label(k) == Some(v),
        Requirement::Differs(k, v) => label(k) != Some(v),
    })
}

/// GET on a collection: a list, or with `watch=true` a watch.
async fn list_or_watch<K>(
    State(server): State<FakeApiServer>,
    Path(_ns): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response
where
    K: WatchedKind + kube::Resource<DynamicType = ()> + Serialize,
{
    let selector = match parse_selector(
        params
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or(""),
    ) {
        Ok(selector) => selector,
        Err(message) => return bad_request(message),
    };
    for unsupported in ["fieldSelector", "sendInitialEvents"] {
        if params.contains_key(unsupported) {
            return bad_request(format!(
                "the FAKE API server does not support {unsupported}"
            ));
        }
    }
    let client = client(&server, &headers);
    let watch = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        // Everything fits in one page, so `limit` is met without a continue token.
        let (items, version) = client.list::<K>();
        let items: Vec<K> = items
            .into_iter()
            .filter(|k| selected(k, &selector))
            .collect();
        let list = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": format!("{}List", K::kind(&())),
            "metadata": { "resourceVersion": version.to_string() },
            "items": items,
        });
        return json_response(StatusCode::OK, &list);
    }
    let from = match params.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(v) => match v.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return bad_request(format!(
                    "resourceVersion {v:?} is not one the FAKE API server gave"
                ))
            }
        },
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let bookmarks = params
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let lines = match client.watch_from::<K>(from) {
        Ok(watch) => watch_lines(WatchBody {
            watch,
            client,
            selector,
            bookmarks,
            deadline: tokio::time::Instant::now() + timeout,
            next_bookmark: tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            pending: VecDeque::new(),
            done: false,
        }),
        Err(too_old) => {
            let error = expired(&format!(
                "too old resource version: {} ({})",
                too_old.requested, too_old.oldest
            ));
            stream::iter([Ok::<_, Infallible>(error)]).boxed()
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(lines))
        .expect("a watch answer builds")
}

/// An open watch as the HTTP body streams it.
struct WatchBody<K> {
    watch: WatchFrom<K>,
    client: FakeClient,
    selector: Vec<Requirement>,
    bookmarks: bool,
    deadline: tokio::time::Instant,
    next_bookmark: tokio::time::Instant,
    pending: VecDeque<Bytes>,
    done: bool,
}

fn event_line(kind: &str, object: &impl Serialize) -> Bytes {
    let mut line = serde_json::to_vec(&serde_json::json!({ "type": kind, "object": object }))
        .expect("an event serialises");
    line.push(b'\n');
    line.into()
}

/// The 410 ERROR event that tells a watcher to list again.
fn expired(message: &str) -> Bytes {
    event_line(
        "ERROR",
        &status_body(StatusCode::GONE, "Expired", message.to_string(), None),
    )
}

impl<K> WatchBody<K>
where
    K: WatchedKind + kube::Resource<DynamicType = ()> + Serialize,
{
    fn push_change(&mut self, change: Change<K>) {
        if !selected(change.object(), &self.selector) {
            return;
        }
        let kind = match change {
            Change::Added(_) => "ADDED",
            Change::Modified(_) => "MODIFIED",
        };
        self.client.server().count_event(self.client.caller());
        self.pending.push_back(event_line(kind, change.object()));
    }

    /// Hands out what has changed so far, then a bookmark at the version that reaches.
    fn bookmark(&mut self) {
        match self.watch.catch_up() {
            Some((changes, version)) => {
                for change in changes {
                    self.push_change(change);
                }
                let bookmark = serde_json::json!({
                    "apiVersion": K::api_version(&()),
                    "kind": K::kind(&()),
                    "metadata": { "resourceVersion": version.to_string() },
                });
                self.pending.push_back(event_line("BOOKMARK", &bookmark));
            }
            None => {
                self.pending
                    .push_back(expired("the watch fell too far behind"));
                self.done = true;
            }
        }
    }
}

fn watch_lines<K>(
    body: WatchBody<K>,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, Infallible>>
where
    K: WatchedKind + kube::Resource<DynamicType = ()> + Serialize,
{
    stream::unfold(body, |mut body| async move {
        loop {
            if let Some(line) = body.pending.pop_front() {
                return Some((Ok(line), body));
            }
            if body.done {
                return None;
            }
            tokio::select! {
                step = body.watch.next() => match step {
                    WatchStep::Change(change) => body.push_change(change),
                    WatchStep::Expired => {
                        body.pending.push_back(expired("the watch fell too far behind"));
                        body.done = true;
                    }
                    WatchStep::Ended => body.done = true,
                },
                _ = tokio::time::sleep_until(body.deadline) => {
                    if body.bookmarks {
                        body.bookmark();
                    }
                    body.done = true;
                }
                _ = tokio::time::sleep_until(body.next_bookmark), if body.bookmarks => {
                    body.bookmark();
                    body.next_bookmark += BOOKMARK_INTERVAL;
                }
            }
        }
    })
    .boxed()
}
