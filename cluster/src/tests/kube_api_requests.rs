//! The requests [`KubeApi`] makes, answered by hand through kube-rs's mock transport
//! (tower-test), so their method, path, query and body are asserted as a real API server
//! would receive them.

use super::{job, lease, status, NS};
use crate::api::{ApiError, ClusterApi, Event};
use crate::resources::JobPhase;
use crate::KubeApi;
use futures_util::StreamExt;
use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tower_test::mock::{self, Handle, SendResponse};

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// Generous: the watcher waits out its backoff (under a second at first) after an error.
const DEADLINE: Duration = Duration::from_secs(20);

fn mock_api() -> (KubeApi, MockHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (KubeApi::new(kube::Client::new(service, NS), NS), handle)
}

struct Received {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    content_type: Option<String>,
    body: Value,
    send: SendResponse<Response<Body>>,
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

async fn next(handle: &mut MockHandle) -> Received {
    let (request, send) = tokio::time::timeout(DEADLINE, handle.next_request())
        .await
        .expect("a request within the deadline")
        .expect("the client is still there");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let query = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Received {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string()),
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
        send,
    }
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": "answered by the test", "reason": reason, "code": code})
}

fn stored_job(name: &str, version: &str) -> Value {
    let mut job = job(name);
    job.metadata.resource_version = Some(version.into());
    serde_json::to_value(job).unwrap()
}

const JOBS: &str = "/apis/ward.dev/v1alpha1/namespaces/ward/wardjobs";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ward/leases";

#[tokio::test]
async fn the_claim_is_a_status_replace_carrying_the_resource_version_and_409_is_a_conflict() {
    let (api, mut handle) = mock_api();
    let mut claim = job("j1");
    claim.metadata.resource_version = Some("7".into());
    claim.status = Some(status(JobPhase::Claimed, "node-a"));
    let server = tokio::spawn(async move {
        let r = next(&mut handle).await;
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.path, format!("{JOBS}/j1/status"));
        assert_eq!(r.body["metadata"]["resourceVersion"], "7");
        assert_eq!(r.body["status"]["phase"], "Claimed");
        assert_eq!(r.body["status"]["node"], "node-a");
        let mut answer = r.body.clone();
        answer["metadata"]["resourceVersion"] = json!("8");
        respond(r.send, 200, &answer);
        // The second claim loses: another node wrote first.
        let r = next(&mut handle).await;
        assert_eq!(r.path, format!("{JOBS}/j1/status"));
        respond(r.send, 409, &failure(409, "Conflict"));
    });
    let won = api.replace_job_status(&claim).await.unwrap();
    assert_eq!(won.metadata.resource_version.as_deref(), Some("8"));
    let lost = api.replace_job_status(&claim).await;
    assert!(
        matches!(lost, Err(ApiError::Conflict(ref what)) if what == "wardjobs/j1"),
        "{lost:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn errors_map_by_code_and_reason() {
    let (api, mut handle) = mock_api();
    let server = tokio::spawn(async move {
        let r = next(&mut handle).await;
        assert_eq!((r.method, r.path.as_str()), (Method::POST, JOBS));
        assert_eq!(r.body["metadata"]["name"], "j1");
        respond(r.send, 409, &failure(409, "AlreadyExists"));
        let r = next(&mut handle).await;
        assert_eq!((r.method, r.path), (Method::GET, format!("{JOBS}/j2")));
        respond(r.send, 404, &failure(404, "NotFound"));
        let r = next(&mut handle).await;
        assert_eq!(
            (r.method, r.path),
            (Method::GET, format!("{LEASES}/ward-node-a"))
        );
        respond(r.send, 404, &failure(404, "NotFound"));
        let r = next(&mut handle).await;
        respond(r.send, 500, &failure(500, "InternalError"));
    });
    assert!(matches!(
        api.create_job(&job("j1")).await,
        Err(ApiError::AlreadyExists(_))
    ));
    assert!(
        matches!(api.get_job("j2").await, Err(ApiError::NotFound(ref w)) if w == "wardjobs/j2")
    );
    assert!(api.get_lease("ward-node-a").await.unwrap().is_none());
    let other = api.get_job("j3").await;
    assert!(
        matches!(other, Err(ApiError::Other(ref m)) if m.contains("wardjobs/j3")),
        "{other:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn progress_is_a_merge_patch_of_the_status_with_the_resource_version_in_the_body() {
    let (api, mut handle) = mock_api();
    let server = tokio::spawn(async move {
        let r = next(&mut handle).await;
        assert_eq!(r.method, Method::PATCH);
        assert_eq!(r.path, format!("{JOBS}/j1/status"));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(r.body["metadata"], json!({"resourceVersion": "8"}));
        assert_eq!(r.body["status"]["phase"], "Running");
        assert_eq!(
            r.body.as_object().unwrap().len(),
            2,
            "only metadata and status: {}",
            r.body
        );
        respond(r.send, 200, &stored_job("j1", "9"));
    });
    let patched = api
        .patch_job_status("j1", "8", &status(JobPhase::Running, "node-a"))
        .await
        .unwrap();
    assert_eq!(patched.metadata.resource_version.as_deref(), Some("9"));
    server.await.unwrap();
}

#[tokio::test]
async fn cancel_is_a_merge_patch_of_the_spec() {
    let (api, mut handle) = mock_api();
    let server = tokio::spawn(async move {
        let r = next(&mut handle).await;
        assert_eq!(r.method, Method::PATCH);
        assert_eq!(r.path, format!("{JOBS}/j1"));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(r.body, json!({"spec": {"cancel": true}}));
        respond(r.send, 200, &stored_job("j1", "10"));
    });
    api.cancel_job("j1").await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn a_lease_is_created_then_renewed_by_a_replace_carrying_its_resource_version() {
    let (api, mut handle) = mock_api();
    let server = tokio::spawn(async move {
        let r = next(&mut handle).await;
        assert_eq!((r.method, r.path.as_str()), (Method::POST, LEASES));
        assert_eq!(r.body["metadata"]["name"], "ward-node-a");
        assert_eq!(r.body["metadata"]["labels"]["ward.dev/node-lease"], "true");
        let mut answer = r.body.clone();
        answer["metadata"]["resourceVersion"] = json!("3");
        respond(r.send, 201, &answer);
        let r = next(&mut handle).await;
        assert_eq!(
            (r.method, r.path),
            (Method::PUT, format!("{LEASES}/ward-node-a"))
        );
        assert_eq!(r.body["metadata"]["resourceVersion"], "3");
        let mut answer = r.body.clone();
        answer["metadata"]["resourceVersion"] = json!("4");
        respond(r.send, 200, &answer);
        let r = next(&mut handle).await;
        assert_eq!(r.body["metadata"]["resourceVersion"], "3");
        respond(r.send, 409, &failure(409, "Conflict"));
    });
    let created = api.create_lease(&lease("a")).await.unwrap();
    assert_eq!(created.metadata.resource_version.as_deref(), Some("3"));
    let renewed = api.replace_lease(&created).await.unwrap();
    assert_eq!(renewed.metadata.resource_version.as_deref(), Some("4"));
    let stale = api.replace_lease(&created).await;
    assert!(
        matches!(stale, Err(ApiError::Conflict(ref w)) if w == "leases/ward-node-a"),
        "{stale:?}"
    );
    server.await.unwrap();
}

pub(crate) async fn step<K>(
    stream: &mut futures_util::stream::BoxStream<'static, Result<Event<K>, ApiError>>,
) -> Result<Event<K>, ApiError> {
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("an event within the deadline")
        .expect("the stream goes on")
}

fn lease_value(node: &str, version: &str) -> Value {
    let mut lease = lease(node);
    lease.metadata.resource_version = Some(version.into());
    serde_json::to_value(lease).unwrap()
}

fn lines(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.extend(serde_json::to_vec(event).unwrap());
        out.push(b'\n');
    }
    out
}

#[tokio::test]
async fn the_lease_watch_lists_watches_resumes_and_lists_again_after_410() {
    let (api, mut handle) = mock_api();
    let server = tokio::spawn(async move {
        let list = |version: &str, items: Vec<Value>| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "LeaseList",
                   "metadata": {"resourceVersion": version}, "items": items})
        };
        // The list: node Leases only, no watch.
        let r = next(&mut handle).await;
        assert_eq!((r.method, r.path.as_str()), (Method::GET, LEASES));
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("ward.dev/node-lease")
        );
        assert!(!r.query.contains_key("watch"), "{:?}", r.query);
        respond(r.send, 200, &list("5", vec![lease_value("a", "5")]));
        // The watch from the list's version; the answer ends after one change.
        let r = next(&mut handle).await;
        assert_eq!(r.path, LEASES);
        assert_eq!(r.query.get("watch").map(String::as_str), Some("true"));
        assert_eq!(
            r.query.get("resourceVersion").map(String::as_str),
            Some("5")
        );
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("ward.dev/node-lease")
        );
        assert_eq!(
            r.query.get("allowWatchBookmarks").map(String::as_str),
            Some("true")
        );
        r.send.send_response(Response::new(Body::from(lines(&[
            json!({"type": "MODIFIED", "object": lease_value("a", "6")}),
        ]))));
        // Resumed from the last version seen; this time the version is too old.
        let r = next(&mut handle).await;
        assert_eq!(r.query.get("watch").map(String::as_str), Some("true"));
        assert_eq!(
            r.query.get("resourceVersion").map(String::as_str),
            Some("6")
        );
        r.send
            .send_response(Response::new(Body::from(lines(&[json!({
                "type": "ERROR",
                "object": failure(410, "Expired"),
            })]))));
        // So it lists again.
        let r = next(&mut handle).await;
        assert!(!r.query.contains_key("watch"), "{:?}", r.query);
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("ward.dev/node-lease")
        );
        respond(
            r.send,
            200,
            &list("9", vec![lease_value("a", "8"), lease_value("b", "9")]),
        );
        // Leave the next watch open until the test ends.
        let r = next(&mut handle).await;
        assert_eq!(
            r.query.get("resourceVersion").map(String::as_str),
            Some("9")
        );
        handle
    });
    let mut leases = api.watch_leases();
    assert!(matches!(step(&mut leases).await, Ok(Event::Init)));
    assert!(
        matches!(step(&mut leases).await, Ok(Event::InitApply(ref l)) if l.metadata.resource_version.as_deref() == Some("5"))
    );
    assert!(matches!(step(&mut leases).await, Ok(Event::InitDone)));
    assert!(
        matches!(step(&mut leases).await, Ok(Event::Apply(ref l)) if l.metadata.resource_version.as_deref() == Some("6"))
    );
    assert!(
        matches!(step(&mut leases).await, Err(ApiError::Other(ref m)) if m.contains("410") || m.contains("Expired"))
    );
    assert!(matches!(step(&mut leases).await, Ok(Event::Init)));
    assert!(matches!(step(&mut leases).await, Ok(Event::InitApply(_))));
    assert!(
        matches!(step(&mut leases).await, Ok(Event::InitApply(ref l)) if l.metadata.name.as_deref() == Some("ward-node-b"))
    );
    assert!(matches!(step(&mut leases).await, Ok(Event::InitDone)));
    // Poll once more so the watcher makes its next watch request.
    let pending = tokio::spawn(async move { leases.next().await.map(|e| e.is_ok()) });
    let _handle = server.await.unwrap();
    pending.abort();
}
