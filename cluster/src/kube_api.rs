//! [`ClusterApi`] on a real Kubernetes API server, through kube-rs: what `ward node` and
//! `ward serve --cluster` use in a cluster (and, in tests, against the FAKE API server's
//! HTTP front, [`crate::fake_http`]).
//!
//! Every write that decides who holds a job is conditional on the resourceVersion the
//! writer read, so the API server's optimistic concurrency (409 Conflict) decides races:
//! the claim is a status *replace* carrying the object's resourceVersion; progress is a
//! status *merge patch* whose body carries `metadata.resourceVersion` (the API server
//! treats it as a precondition, exactly as on a replace).
//!
//! Watches are kube-rs's [`watcher`]: a list, then a watch from the list's
//! resourceVersion, resumed from the last version seen when the API server closes it, and
//! restarted with a fresh list after 410 Gone. Each error the watcher meets is yielded as
//! [`ApiError::Other`] (the stream goes on) and is followed by kube-rs's default backoff
//! (exponential from 800 ms up to 30 s with jitter, reset after two quiet minutes), so a
//! node cut off from the API server does not hammer it when it comes back.

use crate::api::{ApiError, ClusterApi, Event};
use crate::lease::LEASE_LABEL;
use crate::resources::{WardJob, WardJobStatus, WardPipeline};
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};

/// The Kubernetes API server, in one namespace. Cloning shares the connection pool.
#[derive(Clone)]
pub struct KubeApi {
    namespace: String,
    jobs: Api<WardJob>,
    pipelines: Api<WardPipeline>,
    leases: Api<Lease>,
}

impl KubeApi {
    /// Ward's resources in `namespace`, through `client`.
    pub fn new(client: kube::Client, namespace: &str) -> KubeApi {
        KubeApi {
            namespace: namespace.to_string(),
            jobs: Api::namespaced(client.clone(), namespace),
            pipelines: Api::namespaced(client.clone(), namespace),
            leases: Api::namespaced(client, namespace),
        }
    }

    /// The namespace of the resources this client reads and writes.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The API server this process was given: inside a pod its service account, elsewhere
    /// `KUBECONFIG` (or `~/.kube/config`). The namespace is `namespace` where given, else
    /// the one the configuration names (the pod's own namespace in a cluster).
    pub async fn infer(namespace: Option<&str>) -> Result<KubeApi, ApiError> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| ApiError::Other(format!("no Kubernetes configuration found: {e}")))?;
        let namespace = namespace
            .map(str::to_string)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| {
            ApiError::Other(format!("could not make a client for the API server: {e}"))
        })?;
        Ok(KubeApi::new(client, &namespace))
    }
}

/// The API server's answer as an [`ApiError`]; `object` names what was asked for
/// (`wardjobs/<name>`), as the fake's errors do.
fn api_error(err: kube::Error, verb: &str, object: &str) -> ApiError {
    if let kube::Error::Api(status) = &err {
        match (status.code, status.reason.as_str()) {
            (409, "Conflict") => return ApiError::Conflict(object.to_string()),
            (409, "AlreadyExists") => return ApiError::AlreadyExists(object.to_string()),
            (404, _) => return ApiError::NotFound(object.to_string()),
            _ => {}
        }
    }
    ApiError::Other(format!("{verb} {object}: {err}"))
}

fn job_key(name: &str) -> String {
    format!("wardjobs/{name}")
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// A watcher's stream as the trait's: its errors become [`ApiError::Other`] naming what was
/// watched, with the default backoff after each.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
) -> BoxStream<'static, Result<Event<K>, ApiError>>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, config)
        .default_backoff()
        .map_err(move |e| ApiError::Other(format!("watching {what}: {e}")))
        .boxed()
}

impl ClusterApi for KubeApi {
    fn watch_jobs(&self) -> BoxStream<'static, Result<Event<WardJob>, ApiError>> {
        watch(self.jobs.clone(), watcher::Config::default(), "wardjobs")
    }

    async fn get_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.jobs
            .get(name)
            .await
            .map_err(|e| api_error(e, "get", &job_key(name)))
    }

    async fn create_job(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        let key = job_key(name_of(&job.metadata));
        self.jobs
            .create(&PostParams::default(), job)
            .await
            .map_err(|e| api_error(e, "create", &key))
    }

    async fn replace_job_status(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        let name = name_of(&job.metadata);
        self.jobs
            .replace_status(name, &PostParams::default(), job)
            .await
            .map_err(|e| api_error(e, "update status of", &job_key(name)))
    }

    async fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> Result<WardJob, ApiError> {
        let patch = crate::api::status_patch(resource_version, status);
        self.jobs
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_error(e, "patch status of", &job_key(name)))
    }

    async fn cancel_job(&self, name: &str) -> Result<WardJob, ApiError> {
        let patch = serde_json::json!({ "spec": { "cancel": true } });
        self.jobs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| api_error(e, "cancel", &job_key(name)))
    }

    async fn get_pipeline(&self, name: &str) -> Result<WardPipeline, ApiError> {
        self.pipelines
            .get(name)
            .await
            .map_err(|e| api_error(e, "get", &format!("wardpipelines/{name}")))
    }

    async fn create_pipeline(&self, pipeline: &WardPipeline) -> Result<WardPipeline, ApiError> {
        let key = format!("wardpipelines/{}", name_of(&pipeline.metadata));
        self.pipelines
            .create(&PostParams::default(), pipeline)
            .await
            .map_err(|e| api_error(e, "create", &key))
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, ApiError> {
        match self.leases.get(name).await {
            Ok(lease) => Ok(Some(lease)),
            Err(e) => match api_error(e, "get", &format!("leases/{name}")) {
                ApiError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn create_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        let key = format!("leases/{}", name_of(&lease.metadata));
        self.leases
            .create(&PostParams::default(), lease)
            .await
            .map_err(|e| api_error(e, "create", &key))
    }

    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        let name = name_of(&lease.metadata);
        self.leases
            .replace(name, &PostParams::default(), lease)
            .await
            .map_err(|e| api_error(e, "update", &format!("leases/{name}")))
    }

    fn watch_leases(&self) -> BoxStream<'static, Result<Event<Lease>, ApiError>> {
        watch(
            self.leases.clone(),
            watcher::Config::default().labels(LEASE_LABEL),
            "node leases",
        )
    }
}
