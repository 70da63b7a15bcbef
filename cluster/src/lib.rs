//! Ward on Kubernetes. The API server holds the truth about jobs: the control plane
//! (`ward serve --cluster`) creates `WardJob`s, node runtimes (`ward node`, one per node from
//! a DaemonSet) claim them under optimistic concurrency, run them, and report through their
//! status; each node holds a Lease whose expiry hands its jobs to the others.

pub mod api;
pub mod crds;
pub mod executor;
pub mod fake;
pub mod fake_http;
pub mod kube_api;
pub mod lease;
pub mod rbac;
pub mod resources;

#[cfg(test)]
mod tests;

pub use api::{ApiError, ClusterApi, Event};
pub use fake::FakeApiServer;
pub use kube_api::KubeApi;
pub use resources::{
    JobPhase, WardJob, WardJobSpec, WardJobStatus, WardPipeline, WardPipelineSpec,
};
