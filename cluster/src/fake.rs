//! A FAKE Kubernetes API server, in process, for tests and the scale simulation: no real API
//! server can run where Ward is built. It implements exactly the semantics Ward relies on,
//! and nothing more:
//! - every write gives the object a new resourceVersion from one counter;
//! - a status replace, a status patch or a Lease replace that carries a resourceVersion
//!   other than the object's current one is refused with 409 Conflict;
//! - a create of an existing name is refused with 409 AlreadyExists, a get of a missing one
//!   with 404;
//! - a watch starts with the full list and then sees every change in order; a watcher that
//!   falls too far behind is restarted with a fresh list, as kube-rs's watcher does after
//!   410 Gone.
//!
//! Each [`FakeClient`] names its caller, and the fake counts every request by caller and by
//! (verb, resource), which is how the simulation measures requests per node and the RBAC
//! test learns which verbs the code really uses.

use crate::api::{ApiError, ClusterApi, Event};
use crate::resources::{WardJob, WardJobStatus, WardPipeline};
use futures_util::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many changes a watcher may fall behind before it is restarted with a fresh list.
const WATCH_BACKLOG: usize = 1 << 16;

/// The FAKE API server. Cloning shares it.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    jobs: broadcast::Sender<Change<WardJob>>,
    leases: broadcast::Sender<Change<Lease>>,
    requests: Mutex<Requests>,
    /// The fake's clock: wall time when it was made, advanced by tokio's clock, so
    /// timestamps follow virtual time in a simulation (`tokio::time::pause`).
    started: (jiff::Timestamp, tokio::time::Instant),
}

#[derive(Default)]
struct State {
    resource_version: u64,
    jobs: BTreeMap<String, WardJob>,
    pipelines: BTreeMap<String, WardPipeline>,
    leases: BTreeMap<String, Lease>,
}

#[derive(Clone)]
enum Change<K> {
    Apply(K),
}

/// The requests the fake has answered.
#[derive(Clone, Debug, Default)]
pub struct Requests {
    /// Requests by caller.
    pub by_caller: BTreeMap<String, u64>,
    /// (verb, resource) pairs by caller, `resource` as RBAC names it (`wardjobs/status`).
    pub verbs: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Watch events delivered, by caller (not requests: they arrive on open watches).
    pub events_by_caller: BTreeMap<String, u64>,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApiServer {
    pub fn new() -> Self {
        let (jobs, _) = broadcast::channel(WATCH_BACKLOG);
        let (leases, _) = broadcast::channel(WATCH_BACKLOG);
        FakeApiServer {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                jobs,
                leases,
                requests: Mutex::new(Requests::default()),
                started: (jiff::Timestamp::now(), tokio::time::Instant::now()),
            }),
        }
    }

    /// A client of the fake that counts its requests under `caller`.
    pub fn client(&self, caller: &str) -> FakeClient {
        FakeClient {
            server: self.clone(),
            caller: caller.into(),
        }
    }

    /// The fake's clock (see [`Inner::started`]).
    pub fn now(&self) -> jiff::Timestamp {
        let (wall, at) = self.inner.started;
        let elapsed = tokio::time::Instant::now().saturating_duration_since(at);
        wall.checked_add(jiff::SignedDuration::try_from(elapsed).unwrap_or_default())
            .unwrap_or(wall)
    }

    /// The requests answered so far.
    pub fn requests(&self) -> Requests {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every job as it is now.
    pub fn jobs(&self) -> Vec<WardJob> {
        self.state().jobs.values().cloned().collect()
    }

    /// Every Lease as it is now.
    pub fn leases(&self) -> Vec<Lease> {
        self.state().leases.values().cloned().collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, caller: &str, verb: &str, resource: &str) {
        let mut r = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *r.by_caller.entry(caller.to_string()).or_default() += 1;
        r.verbs
            .entry(caller.to_string())
            .or_default()
            .insert((verb.to_string(), resource.to_string()));
    }

    fn count_event(&self, caller: &str) {
        let mut r = self
            .inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *r.events_by_caller.entry(caller.to_string()).or_default() += 1;
    }
}

/// A client of the [`FakeApiServer`], named by its caller.
#[derive(Clone)]
pub struct FakeClient {
    server: FakeApiServer,
    caller: Arc<str>,
}

impl FakeClient {
    /// The server this client talks to.
    pub fn server(&self) -> &FakeApiServer {
        &self.server
    }

    fn count(&self, verb: &str, resource: &str) {
        self.server.count(&self.caller, verb, resource);
    }
}

fn job_key(name: &str) -> String {
    format!("wardjobs/{name}")
}

fn next_version(state: &mut State) -> String {
    state.resource_version += 1;
    state.resource_version.to_string()
}

/// RFC 7386 JSON merge patch of `patch` onto `target`.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(fields) => {
            if !target.is_object() {
                *target = serde_json::Value::Object(Default::default());
            }
            let map = target.as_object_mut().expect("an object");
            for (key, value) in fields {
                if value.is_null() {
                    map.remove(key);
                } else {
                    merge_patch(
                        map.entry(key.clone()).or_insert(serde_json::Value::Null),
                        value,
                    );
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeClient {
    /// The watch stream of one kind: subscribes under the state lock (so no change between
    /// the list and the watch is missed), yields the list, then every change; a receiver
    /// that lagged starts over with a fresh list.
    fn watch<K: Clone + Send + 'static>(
        &self,
        list: impl Fn(&State) -> Vec<K> + Send + Sync + 'static,
        subscribe: impl Fn(&Inner) -> broadcast::Receiver<Change<K>> + Send + Sync + 'static,
        resource: &'static str,
    ) -> BoxStream<'static, Result<Event<K>, ApiError>> {
        let client = self.clone();
        let start = move |client: &FakeClient| {
            client.count("list", resource);
            client.count("watch", resource);
            let state = client.server.state();
            let rx = subscribe(&client.server.inner);
            let items = list(&state);
            drop(state);
            let mut first = vec![Event::Init];
            first.extend(items.into_iter().map(Event::InitApply));
            first.push(Event::InitDone);
            (first, rx)
        };
        let (first, rx) = start(&client);
        let state = (client, std::collections::VecDeque::from(first), rx, start);
        stream::unfold(state, |(client, mut queue, mut rx, start)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    client.server.count_event(&client.caller);
                    return Some((Ok(event), (client, queue, rx, start)));
                }
                match rx.recv().await {
                    Ok(Change::Apply(k)) => queue.push_back(Event::Apply(k)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (first, fresh) = start(&client);
                        queue.extend(first);
                        rx = fresh;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

impl ClusterApi for FakeClient {
    fn watch_jobs(&self) -> BoxStream<'static, Result<Event<WardJob>, ApiError>> {
        self.watch(
            |s| s.jobs.values().cloned().collect(),
            |i| i.jobs.subscribe(),
            "wardjobs",
        )
    }

    async fn get_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.count("get", "wardjobs");
        self.server
            .state()
            .jobs
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(job_key(name)))
    }

    async fn create_job(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.count("create", "wardjobs");
        let name = job.metadata.name.clone().unwrap_or_default();
        let now = self.server.now();
        let mut state = self.server.state();
        if state.jobs.contains_key(&name) {
            return Err(ApiError::AlreadyExists(job_key(&name)));
        }
        let mut stored = job.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        stored.metadata.creation_timestamp = Some(Time(now));
        stored.metadata.uid = Some(format!("fake-uid-{}", state.resource_version));
        // A create ignores the status, as the API server does for a status subresource.
        stored.status = None;
        state.jobs.insert(name, stored.clone());
        let _ = self.server.inner.jobs.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    async fn replace_job_status(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.count("update", "wardjobs/status");
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut state = self.server.state();
        let Some(current) = state.jobs.get(&name) else {
            return Err(ApiError::NotFound(job_key(&name)));
        };
        if job.metadata.resource_version != current.metadata.resource_version {
            return Err(ApiError::Conflict(job_key(&name)));
        }
        let mut stored = current.clone();
        stored.status = job.status.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name, stored.clone());
        let _ = self.server.inner.jobs.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    async fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> Result<WardJob, ApiError> {
        self.count("patch", "wardjobs/status");
        let mut state = self.server.state();
        let Some(current) = state.jobs.get(name) else {
            return Err(ApiError::NotFound(job_key(name)));
        };
        if current.metadata.resource_version.as_deref() != Some(resource_version) {
            return Err(ApiError::Conflict(job_key(name)));
        }
        let mut value = serde_json::to_value(&current.status).expect("a status serialises");
        merge_patch(
            &mut value,
            &serde_json::to_value(status).expect("a status serialises"),
        );
        let mut stored = current.clone();
        stored.status = Some(
            serde_json::from_value(value)
                .map_err(|e| ApiError::Other(format!("status patch of {name}: {e}")))?,
        );
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name.to_string(), stored.clone());
        let _ = self.server.inner.jobs.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    async fn cancel_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.count("patch", "wardjobs");
        let mut state = self.server.state();
        let Some(current) = state.jobs.get(name) else {
            return Err(ApiError::NotFound(job_key(name)));
        };
        let mut stored = current.clone();
        stored.spec.cancel = true;
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name.to_string(), stored.clone());
        let _ = self.server.inner.jobs.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    async fn get_pipeline(&self, name: &str) -> Result<WardPipeline, ApiError> {
        self.count("get", "wardpipelines");
        self.server
            .state()
            .pipelines
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("wardpipelines/{name}")))
    }

    async fn create_pipeline(&self, pipeline: &WardPipeline) -> Result<WardPipeline, ApiError> {
        self.count("create", "wardpipelines");
        let name = pipeline.metadata.name.clone().unwrap_or_default();
        let now = self.server.now();
        let mut state = self.server.state();
        if state.pipelines.contains_key(&name) {
            return Err(ApiError::AlreadyExists(format!("wardpipelines/{name}")));
        }
        let mut stored = pipeline.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        stored.metadata.creation_timestamp = Some(Time(now));
        state.pipelines.insert(name, stored.clone());
        Ok(stored)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, ApiError> {
        self.count("get", "leases");
        Ok(self.server.state().leases.get(name).cloned())
    }

    async fn create_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.count("create", "leases");
        let name = lease.metadata.name.clone().unwrap_or_default();
        let now = self.server.now();
        let mut state = self.server.state();
        if state.leases.contains_key(&name) {
            return Err(ApiError::AlreadyExists(format!("leases/{name}")));
        }
        let mut stored = lease.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        stored.metadata.creation_timestamp = Some(Time(now));
        state.leases.insert(name, stored.clone());
        let _ = self.server.inner.leases.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.count("update", "leases");
        let name = lease.metadata.name.clone().unwrap_or_default();
        let mut state = self.server.state();
        let Some(current) = state.leases.get(&name) else {
            return Err(ApiError::NotFound(format!("leases/{name}")));
        };
        if lease.metadata.resource_version != current.metadata.resource_version {
            return Err(ApiError::Conflict(format!("leases/{name}")));
        }
        let mut stored = lease.clone();
        stored.metadata.creation_timestamp = current.metadata.creation_timestamp.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.leases.insert(name, stored.clone());
        let _ = self.server.inner.leases.send(Change::Apply(stored.clone()));
        Ok(stored)
    }

    fn watch_leases(&self) -> BoxStream<'static, Result<Event<Lease>, ApiError>> {
        let node_lease = |l: &Lease| {
            l.metadata
                .labels
                .as_ref()
                .is_some_and(|m| m.contains_key(crate::lease::LEASE_LABEL))
        };
        self.watch(
            move |s| {
                s.leases
                    .values()
                    .filter(|l| node_lease(l))
                    .cloned()
                    .collect()
            },
            |i| i.leases.subscribe(),
            "leases",
        )
        .filter(move |e| {
            let keep = match e {
                Ok(Event::Apply(l)) | Ok(Event::InitApply(l)) | Ok(Event::Delete(l)) => {
                    node_lease(l)
                }
                _ => true,
            };
            std::future::ready(keep)
        })
        .boxed()
    }
}
