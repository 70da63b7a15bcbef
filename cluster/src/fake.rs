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
//!
//! For its HTTP front ([`crate::fake_http`]) the fake also keeps a bounded history of the
//! changes to jobs and to Leases, so a watch can start from a resourceVersion as a real API
//! server's can; one from a version the history no longer reaches is refused (410 Gone),
//! and [`FakeApiServer::forget_history`] drops the history on purpose (as an etcd
//! compaction does) to make watchers start over.

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
/// How many changes of each kind the fake remembers for watches that start from a
/// resourceVersion (a real API server keeps about five minutes' worth).
const HISTORY_LIMIT: usize = 1 << 14;

/// The FAKE API server. Cloning shares it.
#[derive(Clone)]
pub struct FakeApiServer {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    jobs: broadcast::Sender<Change<WardJob>>,
    leases: broadcast::Sender<Change<Lease>>,
    requests: Mutex<Requests>,
    /// Bumped by [`FakeApiServer::forget_history`]: ends the HTTP front's open watches.
    compactions: tokio::sync::watch::Sender<u64>,
    /// The fake's clock: wall time when it was made, advanced by tokio's clock, so
    /// timestamps follow virtual time in a simulation (`tokio::time::pause`).
    started: (jiff::Timestamp, tokio::time::Instant),
}

#[derive(Default)]
pub(crate) struct State {
    resource_version: u64,
    jobs: BTreeMap<String, WardJob>,
    pipelines: BTreeMap<String, WardPipeline>,
    leases: BTreeMap<String, Lease>,
    job_history: History<WardJob>,
    lease_history: History<Lease>,
}

/// One change to an object, as a watch reports it.
#[derive(Clone)]
pub(crate) enum Change<K> {
    Added(K),
    Modified(K),
}

impl<K> Change<K> {
    pub(crate) fn object(&self) -> &K {
        match self {
            Change::Added(k) | Change::Modified(k) => k,
        }
    }
}

/// The latest changes of one kind, for watches that start from a resourceVersion.
pub(crate) struct History<K> {
    /// Every change of this kind after this resourceVersion is in `changes`.
    floor: u64,
    changes: std::collections::VecDeque<(u64, Change<K>)>,
}

impl<K> Default for History<K> {
    fn default() -> Self {
        History {
            floor: 0,
            changes: Default::default(),
        }
    }
}

impl<K> History<K> {
    fn push(&mut self, version: u64, change: Change<K>) {
        if self.changes.len() == HISTORY_LIMIT {
            if let Some((dropped, _)) = self.changes.pop_front() {
                self.floor = dropped;
            }
        }
        self.changes.push_back((version, change));
    }
}

/// The kinds the fake can list and watch from a resourceVersion.
pub(crate) trait WatchedKind: Clone + Send + Sync + 'static {
    /// The resource, as RBAC names it.
    const RESOURCE: &'static str;
    fn objects(state: &State) -> &BTreeMap<String, Self>;
    fn history(state: &mut State) -> &mut History<Self>;
    fn channel(inner: &Inner) -> &broadcast::Sender<Change<Self>>;
}

impl WatchedKind for WardJob {
    const RESOURCE: &'static str = "wardjobs";
    fn objects(state: &State) -> &BTreeMap<String, Self> {
        &state.jobs
    }
    fn history(state: &mut State) -> &mut History<Self> {
        &mut state.job_history
    }
    fn channel(inner: &Inner) -> &broadcast::Sender<Change<Self>> {
        &inner.jobs
    }
}

impl WatchedKind for Lease {
    const RESOURCE: &'static str = "leases";
    fn objects(state: &State) -> &BTreeMap<String, Self> {
        &state.leases
    }
    fn history(state: &mut State) -> &mut History<Self> {
        &mut state.lease_history
    }
    fn channel(inner: &Inner) -> &broadcast::Sender<Change<Self>> {
        &inner.leases
    }
}

/// Records a change (under the state lock, so watches see changes in version order) and
/// sends it to open watches.
fn publish<K: WatchedKind>(inner: &Inner, state: &mut State, change: Change<K>) {
    let version = state.resource_version;
    K::history(state).push(version, change.clone());
    let _ = K::channel(inner).send(change);
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
                compactions: tokio::sync::watch::channel(0).0,
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

    /// Forgets every change made so far, as an etcd compaction does, and ends the watches
    /// open on the HTTP front: a watcher that resumes from a version it saw before gets
    /// 410 Gone and has to list again.
    pub fn forget_history(&self) {
        {
            let mut guard = self.state();
            let state = &mut *guard;
            let now = state.resource_version;
            state.job_history = History {
                floor: now,
                changes: Default::default(),
            };
            state.lease_history = History {
                floor: now,
                changes: Default::default(),
            };
        }
        self.inner.compactions.send_modify(|n| *n += 1);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn count(&self, caller: &str, verb: &str, resource: &str) {
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

    pub(crate) fn count_event(&self, caller: &str) {
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

    /// The caller its requests are counted under.
    pub fn caller(&self) -> &str {
        &self.caller
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
                    Ok(change) => queue.push_back(Event::Apply(change.object().clone())),
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
        publish(
            &self.server.inner,
            &mut state,
            Change::Added(stored.clone()),
        );
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
        publish(
            &self.server.inner,
            &mut state,
            Change::Modified(stored.clone()),
        );
        Ok(stored)
    }

    async fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> Result<WardJob, ApiError> {
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": resource_version },
            "status": status,
        });
        self.merge_patch_job_status(name, &patch)
    }

    async fn cancel_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.merge_patch_job(name, &serde_json::json!({ "spec": { "cancel": true } }))
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
        publish(
            &self.server.inner,
            &mut state,
            Change::Added(stored.clone()),
        );
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
        publish(
            &self.server.inner,
            &mut state,
            Change::Modified(stored.clone()),
        );
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

/// A watch of one kind from a resourceVersion, for the HTTP front: the changes after that
/// version, then every change as it is made.
pub(crate) struct WatchFrom<K> {
    server: FakeApiServer,
    replay: std::collections::VecDeque<Change<K>>,
    rx: broadcast::Receiver<Change<K>>,
    compactions: tokio::sync::watch::Receiver<u64>,
}

/// What a [`WatchFrom`] sees next.
pub(crate) enum WatchStep<K> {
    Change(Change<K>),
    /// The watch fell too far behind to go on: its client has to list again.
    Expired,
    /// The history was forgotten ([`FakeApiServer::forget_history`]) or the fake is going
    /// away: the watch ends, as when a real API server restarts.
    Ended,
}

/// A watch asked to start from a version older than the fake's history reaches.
#[derive(Debug)]
pub(crate) struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

impl<K: WatchedKind> WatchFrom<K> {
    pub(crate) async fn next(&mut self) -> WatchStep<K> {
        if let Some(change) = self.replay.pop_front() {
            return WatchStep::Change(change);
        }
        tokio::select! {
            received = self.rx.recv() => match received {
                Ok(change) => WatchStep::Change(change),
                Err(broadcast::error::RecvError::Lagged(_)) => WatchStep::Expired,
                Err(broadcast::error::RecvError::Closed) => WatchStep::Ended,
            },
            _ = self.compactions.changed() => WatchStep::Ended,
        }
    }

    /// The changes made but not yet handed out, and the version a bookmark sent after them
    /// may name: every change of this kind up to it has then been handed out (taken under
    /// the state lock, which every change is published under). `None` if the watch fell
    /// too far behind.
    pub(crate) fn catch_up(&mut self) -> Option<(Vec<Change<K>>, u64)> {
        let state = self.server.state();
        let mut pending: Vec<Change<K>> = self.replay.drain(..).collect();
        loop {
            match self.rx.try_recv() {
                Ok(change) => pending.push(change),
                Err(broadcast::error::TryRecvError::Lagged(_)) => return None,
                Err(_) => break,
            }
        }
        Some((pending, state.resource_version))
    }
}

/// The requests of the HTTP front that the [`ClusterApi`] has no method for, counted as
/// the API server's RBAC would name them.
impl FakeClient {
    /// Every object of a kind, and the resourceVersion the list was taken at.
    pub(crate) fn list<K: WatchedKind>(&self) -> (Vec<K>, u64) {
        self.count("list", K::RESOURCE);
        let state = self.server.state();
        (
            K::objects(&state).values().cloned().collect(),
            state.resource_version,
        )
    }

    /// A watch of a kind from `from`, or, where `from` is `None`, from now with every
    /// current object first as added (what Kubernetes does for a watch without a
    /// resourceVersion or with "0").
    pub(crate) fn watch_from<K: WatchedKind>(
        &self,
        from: Option<u64>,
    ) -> Result<WatchFrom<K>, TooOld> {
        self.count("watch", K::RESOURCE);
        let mut state = self.server.state();
        let replay = match from {
            None => K::objects(&state)
                .values()
                .cloned()
                .map(Change::Added)
                .collect(),
            Some(from) => {
                let history = K::history(&mut state);
                if from < history.floor {
                    return Err(TooOld {
                        requested: from,
                        oldest: history.floor,
                    });
                }
                history
                    .changes
                    .iter()
                    .filter(|(version, _)| *version > from)
                    .map(|(_, change)| change.clone())
                    .collect()
            }
        };
        Ok(WatchFrom {
            server: self.server.clone(),
            replay,
            rx: K::channel(&self.server.inner).subscribe(),
            compactions: self.server.inner.compactions.subscribe(),
        })
    }

    /// One WardJob, read through its status subresource (get on `wardjobs/status`).
    pub(crate) fn get_job_status(&self, name: &str) -> Result<WardJob, ApiError> {
        self.count("get", "wardjobs/status");
        self.server
            .state()
            .jobs
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(job_key(name)))
    }

    /// Replaces a job's spec, labels and annotations (update on `wardjobs`) under
    /// `job.metadata.resourceVersion`; its status is left as it is, as the API server does
    /// for a resource with a status subresource.
    pub(crate) fn replace_job(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.count("update", "wardjobs");
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut state = self.server.state();
        let Some(current) = state.jobs.get(&name) else {
            return Err(ApiError::NotFound(job_key(&name)));
        };
        if job.metadata.resource_version != current.metadata.resource_version {
            return Err(ApiError::Conflict(job_key(&name)));
        }
        let mut stored = current.clone();
        stored.spec = job.spec.clone();
        stored.metadata.labels = job.metadata.labels.clone();
        stored.metadata.annotations = job.metadata.annotations.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name, stored.clone());
        publish(
            &self.server.inner,
            &mut state,
            Change::Modified(stored.clone()),
        );
        Ok(stored)
    }

    /// Merge-patches a job (patch on `wardjobs`): everything but its status and the
    /// fields the API server owns; `metadata.resourceVersion` in the patch, where present,
    /// is a precondition.
    pub(crate) fn merge_patch_job(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<WardJob, ApiError> {
        self.count("patch", "wardjobs");
        let mut state = self.server.state();
        let current = current_for_patch(&state, name, patch)?;
        let mut patch = patch.clone();
        if let Some(fields) = patch.as_object_mut() {
            fields.remove("status");
        }
        let mut value = serde_json::to_value(current).expect("a job serialises");
        merge_patch(&mut value, &patch);
        let mut stored: WardJob = serde_json::from_value(value)
            .map_err(|e| ApiError::Other(format!("patch of {}: {e}", job_key(name))))?;
        let meta = &current.metadata;
        stored.metadata.name = meta.name.clone();
        stored.metadata.namespace = meta.namespace.clone();
        stored.metadata.uid = meta.uid.clone();
        stored.metadata.creation_timestamp = meta.creation_timestamp.clone();
        stored.status = current.status.clone();
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name.to_string(), stored.clone());
        publish(
            &self.server.inner,
            &mut state,
            Change::Modified(stored.clone()),
        );
        Ok(stored)
    }

    /// Merge-patches a job's status (patch on `wardjobs/status`): only `status` in the
    /// patch is applied; `metadata.resourceVersion`, where present, is a precondition.
    pub(crate) fn merge_patch_job_status(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<WardJob, ApiError> {
        self.count("patch", "wardjobs/status");
        let mut state = self.server.state();
        let current = current_for_patch(&state, name, patch)?;
        let mut stored = current.clone();
        if let Some(status_patch) = patch.get("status") {
            let mut value = serde_json::to_value(&current.status).expect("a status serialises");
            merge_patch(&mut value, status_patch);
            stored.status = serde_json::from_value(value)
                .map_err(|e| ApiError::Other(format!("status patch of {name}: {e}")))?;
        }
        stored.metadata.resource_version = Some(next_version(&mut state));
        state.jobs.insert(name.to_string(), stored.clone());
        publish(
            &self.server.inner,
            &mut state,
            Change::Modified(stored.clone()),
        );
        Ok(stored)
    }
}

/// The job a patch applies to, once its resourceVersion precondition (if any) holds.
fn current_for_patch<'s>(
    state: &'s State,
    name: &str,
    patch: &serde_json::Value,
) -> Result<&'s WardJob, ApiError> {
    let current = state
        .jobs
        .get(name)
        .ok_or_else(|| ApiError::NotFound(job_key(name)))?;
    let precondition = patch
        .pointer("/metadata/resourceVersion")
        .and_then(|v| v.as_str());
    match precondition {
        Some(version) if current.metadata.resource_version.as_deref() != Some(version) => {
            Err(ApiError::Conflict(job_key(name)))
        }
        _ => Ok(current),
    }
}
