//! What Ward asks of the Kubernetes API server, as one trait: the node runtime, the control
//! plane and the scale simulation are written against it, so the same code runs against a
//! real API server ([`crate::kube_api::KubeApi`]) and the in-process fake
//! ([`crate::fake::FakeApiServer`]).
//!
//! Every write that decides who holds a job carries the resourceVersion the writer read:
//! the API server answers 409 ([`ApiError::Conflict`]) when the object changed since.

use crate::resources::{WardJob, WardJobStatus, WardPipeline};
use futures_util::stream::BoxStream;
use k8s_openapi::api::coordination::v1::Lease;
use std::future::Future;

/// A change seen by a watch: the same events kube-rs's watcher yields (a full re-list
/// arrives as `Init`, `InitApply`…, `InitDone`, after the watch had to restart).
pub type Event<K> = kube::runtime::watcher::Event<K>;

/// An error the API server (or the way to it) gave.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 409 on a write carrying a resourceVersion: another writer changed the object first.
    #[error("{0} was changed since it was read (409 Conflict)")]
    Conflict(String),
    /// 404.
    #[error("{0} does not exist (404 Not Found)")]
    NotFound(String),
    /// 409 on a create.
    #[error("{0} already exists (409 AlreadyExists)")]
    AlreadyExists(String),
    /// Anything else: the connection, a 5xx, an answer that could not be read.
    #[error("Kubernetes API: {0}")]
    Other(String),
}

type Answer<T> = Result<T, ApiError>;

/// The body of a job's status merge patch: the status, and the resourceVersion it was
/// written against, which the API server takes as a precondition (409 Conflict when the
/// object has changed since). The real client and the fake send the same body.
pub fn status_patch(resource_version: &str, status: &WardJobStatus) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "resourceVersion": resource_version },
        "status": status,
    })
}

/// The requests Ward makes, in one namespace.
pub trait ClusterApi: Clone + Send + Sync + 'static {
    /// WardJobs as they change, starting with a full list (list + watch, restarted as
    /// needed).
    fn watch_jobs(&self) -> BoxStream<'static, Answer<Event<WardJob>>>;
    /// One WardJob (get).
    fn get_job(&self, name: &str) -> impl Future<Output = Answer<WardJob>> + Send;
    /// A new WardJob (create); the API server sets its uid, resourceVersion and
    /// creationTimestamp.
    fn create_job(&self, job: &WardJob) -> impl Future<Output = Answer<WardJob>> + Send;
    /// Replaces a job's status (update on `wardjobs/status`) under
    /// `job.metadata.resourceVersion`: the claim.
    fn replace_job_status(&self, job: &WardJob) -> impl Future<Output = Answer<WardJob>> + Send;
    /// Merge-patches a job's status (patch on `wardjobs/status`) under `resource_version`:
    /// progress, by the node holding the job.
    fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> impl Future<Output = Answer<WardJob>> + Send;
    /// Asks for a job to be stopped: merge-patches `spec.cancel` to true (patch on
    /// `wardjobs`).
    fn cancel_job(&self, name: &str) -> impl Future<Output = Answer<WardJob>> + Send;
    /// One WardPipeline (get).
    fn get_pipeline(&self, name: &str) -> impl Future<Output = Answer<WardPipeline>> + Send;
    /// A new WardPipeline (create); pipelines are never changed, a new version is a new
    /// object.
    fn create_pipeline(
        &self,
        pipeline: &WardPipeline,
    ) -> impl Future<Output = Answer<WardPipeline>> + Send;
    /// One Lease (get); `None` where there is none.
    fn get_lease(&self, name: &str) -> impl Future<Output = Answer<Option<Lease>>> + Send;
    /// A new Lease (create).
    fn create_lease(&self, lease: &Lease) -> impl Future<Output = Answer<Lease>> + Send;
    /// Replaces a Lease (update) under `lease.metadata.resourceVersion`: the renewal.
    fn replace_lease(&self, lease: &Lease) -> impl Future<Output = Answer<Lease>> + Send;
    /// Node Leases (those labelled [`crate::lease::LEASE_LABEL`]) as they change (list +
    /// watch).
    fn watch_leases(&self) -> BoxStream<'static, Answer<Event<Lease>>>;
}
