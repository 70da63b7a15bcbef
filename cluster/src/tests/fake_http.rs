//! [`KubeApi`], with a real `kube::Client`, against the FAKE API server's HTTP front over
//! loopback.

use super::kube_api_requests::step;
use super::{job, lease, status, NS};
use crate::api::{ApiError, ClusterApi, Event};
use crate::fake_http;
use crate::resources::JobPhase;
use crate::{FakeApiServer, KubeApi};

/// The FAKE API server on a loopback port, and its URL.
pub(crate) async fn start() -> (FakeApiServer, String) {
    let server = FakeApiServer::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(fake_http::serve(server.clone(), listener));
    (server, url)
}

pub(crate) async fn kube_api(url: &str, caller: &str) -> KubeApi {
    KubeApi::new(fake_http::kube_client(url, caller, NS).await.unwrap(), NS)
}

#[tokio::test]
async fn jobs_are_created_claimed_under_their_version_patched_and_cancelled() {
    let (server, url) = start().await;
    let api = kube_api(&url, "node-a").await;
    let created = api.create_job(&job("j1")).await.unwrap();
    let first = created.metadata.resource_version.clone().unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some(NS));
    assert!(matches!(
        api.create_job(&job("j1")).await,
        Err(ApiError::AlreadyExists(_))
    ));
    assert!(matches!(
        api.get_job("nope").await,
        Err(ApiError::NotFound(_))
    ));

    let mut claim = created.clone();
    claim.status = Some(status(JobPhase::Claimed, "node-a"));
    let claimed = api.replace_job_status(&claim).await.unwrap();
    assert_ne!(
        claimed.metadata.resource_version.as_deref(),
        Some(first.as_str())
    );
    // A second claim from the version read before the first is refused.
    let stale = api.replace_job_status(&claim).await;
    assert!(
        matches!(stale, Err(ApiError::Conflict(ref w)) if w == "wardjobs/j1"),
        "{stale:?}"
    );

    let version = claimed.metadata.resource_version.clone().unwrap();
    let running = api
        .patch_job_status("j1", &version, &status(JobPhase::Running, "node-a"))
        .await
        .unwrap();
    assert_eq!(running.phase(), JobPhase::Running);
    let stale = api
        .patch_job_status("j1", &version, &status(JobPhase::Failed, "node-a"))
        .await;
    assert!(matches!(stale, Err(ApiError::Conflict(_))), "{stale:?}");

    let cancelled = api.cancel_job("j1").await.unwrap();
    assert!(cancelled.spec.cancel);
    let read = api.get_job("j1").await.unwrap();
    assert!(read.spec.cancel);
    assert_eq!(
        read.phase(),
        JobPhase::Running,
        "a cancel leaves the status alone"
    );
    assert_eq!(server.jobs().len(), 1);
    assert_eq!(server.jobs()[0].spec, read.spec);
}

#[tokio::test]
async fn leases_are_created_renewed_and_refused_when_stale() {
    let (_server, url) = start().await;
    let api = kube_api(&url, "node-a").await;
    assert!(api.get_lease("ward-node-a").await.unwrap().is_none());
    let created = api.create_lease(&lease("a")).await.unwrap();
    assert!(matches!(
        api.create_lease(&lease("a")).await,
        Err(ApiError::AlreadyExists(_))
    ));
    let renewed = api.replace_lease(&created).await.unwrap();
    assert_ne!(
        renewed.metadata.resource_version,
        created.metadata.resource_version
    );
    let stale = api.replace_lease(&created).await;
    assert!(
        matches!(stale, Err(ApiError::Conflict(ref w)) if w == "leases/ward-node-a"),
        "{stale:?}"
    );
    assert_eq!(api.get_lease("ward-node-a").await.unwrap(), Some(renewed));
}

#[tokio::test]
async fn a_job_watch_sees_changes_and_lists_again_once_the_history_is_gone() {
    let (server, url) = start().await;
    let api = kube_api(&url, "control-plane").await;
    let node = kube_api(&url, "node-a").await;
    let mut jobs = api.watch_jobs();
    assert!(matches!(step(&mut jobs).await, Ok(Event::Init)));
    assert!(matches!(step(&mut jobs).await, Ok(Event::InitDone)));
    api.create_job(&job("j1")).await.unwrap();
    assert!(
        matches!(step(&mut jobs).await, Ok(Event::Apply(ref j)) if j.metadata.name.as_deref() == Some("j1"))
    );

    // A change to another kind moves the version on, then the history is forgotten: the
    // open watch ends, and resuming from the last job version seen gets 410.
    node.create_lease(&lease("a")).await.unwrap();
    server.forget_history();
    let error = step(&mut jobs).await;
    assert!(
        matches!(error, Err(ApiError::Other(ref m)) if m.contains("Expired")),
        "{error:?}"
    );
    assert!(matches!(step(&mut jobs).await, Ok(Event::Init)));
    assert!(
        matches!(step(&mut jobs).await, Ok(Event::InitApply(ref j)) if j.metadata.name.as_deref() == Some("j1"))
    );
    assert!(matches!(step(&mut jobs).await, Ok(Event::InitDone)));
    api.create_job(&job("j2")).await.unwrap();
    assert!(
        matches!(step(&mut jobs).await, Ok(Event::Apply(ref j)) if j.metadata.name.as_deref() == Some("j2"))
    );
}

#[tokio::test]
async fn a_lease_watch_sees_node_leases_only() {
    let (_server, url) = start().await;
    let api = kube_api(&url, "control-plane").await;
    let node = kube_api(&url, "node-a").await;
    let mut other = lease("other");
    other.metadata.name = Some("someone-elses-lease".into());
    other.metadata.labels = None;
    node.create_lease(&other).await.unwrap();
    node.create_lease(&lease("a")).await.unwrap();
    let mut leases = api.watch_leases();
    assert!(matches!(step(&mut leases).await, Ok(Event::Init)));
    assert!(
        matches!(step(&mut leases).await, Ok(Event::InitApply(ref l)) if l.metadata.name.as_deref() == Some("ward-node-a"))
    );
    assert!(matches!(step(&mut leases).await, Ok(Event::InitDone)));
    let mut other2 = other.clone();
    other2.metadata.name = Some("another".into());
    node.create_lease(&other2).await.unwrap();
    node.create_lease(&lease("b")).await.unwrap();
    assert!(
        matches!(step(&mut leases).await, Ok(Event::Apply(ref l)) if l.metadata.name.as_deref() == Some("ward-node-b"))
    );
}

#[tokio::test]
async fn a_watch_ends_at_its_timeout_with_a_bookmark_at_the_latest_version() {
    use futures_util::StreamExt;
    use kube::api::{Api, WatchEvent, WatchParams};
    let (server, url) = start().await;
    let api = kube_api(&url, "control-plane").await;
    api.create_job(&job("j1")).await.unwrap();
    let node = kube_api(&url, "node-a").await;
    let lease = node.create_lease(&lease("a")).await.unwrap();
    let client = fake_http::kube_client(&url, "control-plane", NS)
        .await
        .unwrap();
    let jobs: Api<crate::WardJob> = Api::namespaced(client, NS);
    let events: Vec<_> = jobs
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], Ok(WatchEvent::Added(_))));
    match &events[1] {
        Ok(WatchEvent::Bookmark(b)) => {
            assert_eq!(
                Some(&b.metadata.resource_version),
                lease.metadata.resource_version.as_ref()
            )
        }
        other => panic!("not a bookmark: {other:?}"),
    }
    assert_eq!(
        server.requests().events_by_caller.get("control-plane"),
        Some(&1)
    );
}
