//! The resources Ward keeps in the Kubernetes API server: `WardPipeline` (a tenant's pipeline
//! document with its components pinned by digest) and `WardJob` (one run of a pipeline on a
//! payload, claimed and run by one node at a time). Node capacity and heartbeat live in a
//! `coordination.k8s.io/v1` Lease per node ([`crate::lease`]), not in a resource of ours.
//!
//! The CRD manifests are generated from these types ([`crate::crds`]); the chart's `crds/`
//! holds that output and a test keeps the two equal.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of Ward's resources.
pub const GROUP: &str = "ward.dev";
/// The version every Ward resource is served and stored at.
pub const VERSION: &str = "v1alpha1";

/// A tenant's pipeline, as `ward serve` stored it, with every registry component pinned.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ward.dev",
    version = "v1alpha1",
    kind = "WardPipeline",
    namespaced,
    shortname = "wpl",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","jsonPath":".spec.version"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WardPipelineSpec {
    /// The tenant that owns the pipeline.
    pub tenant: String,
    /// The pipeline's name, as in its document.
    pub name: String,
    /// The version `ward serve` gave this document (1 for the first, +1 per change).
    pub version: u32,
    /// The pipeline document (YAML), exactly as it was submitted.
    pub document: String,
    /// The directory on shared storage that the document's component paths are relative
    /// to (the control plane's components directory); a node runs components from there
    /// and nowhere else, or from the registry by the pinned digests below.
    pub components_dir: String,
    /// The registry components of the document, pinned to the manifest digests that were
    /// verified when it was stored; a node runs these digests and nothing else.
    #[serde(default)]
    pub components: Vec<PinnedComponent>,
}

/// One stage's registry component, pinned by digest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinnedComponent {
    /// The operator (stage) name in the pipeline.
    pub operator: String,
    /// The reference as written (`registry/repository:tag`).
    pub reference: String,
    /// The manifest digest it was pinned to (`sha256:…`).
    pub digest: String,
}

/// One run of a pipeline on a payload. `spec` is written by the control plane; `status` by
/// the node that claimed it (the claim itself is a status replace under the resourceVersion
/// the node read, so two nodes cannot both win).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ward.dev",
    version = "v1alpha1",
    kind = "WardJob",
    namespaced,
    status = "WardJobStatus",
    shortname = "wj",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Pipeline","type":"string","jsonPath":".spec.pipeline.name"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Attempt","type":"integer","jsonPath":".status.attempt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WardJobSpec {
    /// The tenant the job runs for.
    pub tenant: String,
    /// The pipeline to run.
    pub pipeline: PipelineRef,
    /// The payload to run it on.
    pub payload: PayloadRef,
    /// Higher runs first; the default is 0.
    #[serde(default)]
    pub priority: i32,
    /// What the job may hold at once on its node.
    pub requests: JobRequests,
    /// How many attempts the job may take in all (a node's death counts as one).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Set by the control plane to stop the job: a pending job is not claimed, a running
    /// one is ended by its node.
    #[serde(default)]
    pub cancel: bool,
    /// The tenant's datasets the pipeline may mount: name → directory on shared storage.
    #[serde(default)]
    pub datasets: std::collections::BTreeMap<String, String>,
    /// Where the job's results go on shared storage: attempt N writes
    /// `<results>/attempt-N`.
    pub results: String,
}

fn default_max_attempts() -> u32 {
    3
}

/// A pipeline by name, and by version or by the `WardPipeline` object's name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRef {
    /// The pipeline's name.
    pub name: String,
    /// The `WardPipeline` object holding the exact document to run.
    pub object: String,
    /// The pipeline's version (informative: `object` is what is run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// A payload on the shared (ReadWriteMany) volume, mounted at the same path on every node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadRef {
    /// The payload's id in the control plane.
    pub id: String,
    /// Its directory on shared storage; never written to by a job.
    pub path: String,
}

/// A job's requests, the figures a node fits against its free capacity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRequests {
    /// Host memory in bytes the job may hold at once (stages, port channels).
    pub memory_bytes: u64,
    /// Stage slots (CPU) it uses at once.
    pub cpu: u32,
    /// GPU memory in bytes its GPU stages may hold at once.
    #[serde(default)]
    pub gpu_memory_bytes: u64,
}

/// Where a job is in its life. A job without a status is pending.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobPhase {
    /// Waiting for a node.
    #[default]
    Pending,
    /// A node won the claim and is loading the job's components.
    Claimed,
    /// Its stages are running.
    Running,
    /// Every stage succeeded.
    Succeeded,
    /// A stage failed, its attempts ran out, or it could not be run.
    Failed,
    /// Stopped by the control plane.
    Cancelled,
}

impl JobPhase {
    /// Whether the job has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    /// Whether a node holds the job now.
    pub fn is_held(self) -> bool {
        matches!(self, Self::Claimed | Self::Running)
    }
}

/// What the node running a job says of it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WardJobStatus {
    pub phase: JobPhase,
    /// The node holding (or that last held) the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The attempt under way or last made, from 1; 0 before the first claim.
    #[serde(default)]
    pub attempt: u32,
    /// When the current attempt was claimed (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    /// When its stages started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the job reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Each stage's state and timings in the current attempt.
    #[serde(default)]
    pub stages: Vec<StageState>,
    /// Conditions in the Kubernetes style (`Claimed`, `Completed`, `NodeLost`, ...).
    #[serde(default)]
    pub conditions: Vec<JobCondition>,
    /// The current attempt's results directory on shared storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the job failed or was re-claimed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One stage's state in a job's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageState {
    /// The operator name.
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Wall time in milliseconds once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A condition, as Kubernetes objects carry them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339, UTC.
    pub last_transition_time: String,
}

impl WardJob {
    /// The job's phase; a job without a status is pending.
    pub fn phase(&self) -> JobPhase {
        self.status.as_ref().map(|s| s.phase).unwrap_or_default()
    }

    /// The node holding the job, if one does.
    pub fn holder(&self) -> Option<&str> {
        self.status
            .as_ref()
            .filter(|s| s.phase.is_held())
            .and_then(|s| s.node.as_deref())
    }

    /// The attempt under way or last made (0 before the first claim).
    pub fn attempt(&self) -> u32 {
        self.status.as_ref().map(|s| s.attempt).unwrap_or(0)
    }
}
