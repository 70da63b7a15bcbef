//! A node's heartbeat and capacity: a `coordination.k8s.io/v1` Lease named
//! `ward-node-<node>`, renewed every few seconds by the node runtime, with what the node has
//! and what it has free in annotations. A Lease that has not changed for its duration (as
//! seen on the observer's own clock, so the nodes' clocks need not agree) means the node is
//! gone, and its jobs may be claimed again.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use std::collections::BTreeMap;

/// Prefix of every node Lease's name.
pub const LEASE_PREFIX: &str = "ward-node-";
/// Label on every node Lease, so they can be listed and watched apart from other Leases.
pub const LEASE_LABEL: &str = "ward.dev/node-lease";

const TOTAL_MEMORY: &str = "ward.dev/memory-bytes";
const TOTAL_SLOTS: &str = "ward.dev/slots";
const TOTAL_GPU_MEMORY: &str = "ward.dev/gpu-memory-bytes";
const FREE_MEMORY: &str = "ward.dev/free-memory-bytes";
const FREE_SLOTS: &str = "ward.dev/free-slots";
const FREE_GPU_MEMORY: &str = "ward.dev/free-gpu-memory-bytes";

/// The Lease name for a node.
pub fn lease_name(node: &str) -> String {
    format!("{LEASE_PREFIX}{node}")
}

/// The node a Lease belongs to, if it is a node Lease.
pub fn node_of(lease: &Lease) -> Option<&str> {
    lease.metadata.name.as_deref()?.strip_prefix(LEASE_PREFIX)
}

/// What a node can hold at once, or has free.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capacity {
    pub memory_bytes: u64,
    pub slots: u32,
    pub gpu_memory_bytes: u64,
}

impl Capacity {
    /// Whether a job with these requests fits.
    pub fn fits(&self, r: &crate::resources::JobRequests) -> bool {
        r.memory_bytes <= self.memory_bytes
            && r.cpu.max(1) <= self.slots
            && r.gpu_memory_bytes <= self.gpu_memory_bytes
    }

    /// What is left once a job with these requests is placed (saturating).
    pub fn minus(&self, r: &crate::resources::JobRequests) -> Capacity {
        Capacity {
            memory_bytes: self.memory_bytes.saturating_sub(r.memory_bytes),
            slots: self.slots.saturating_sub(r.cpu.max(1)),
            gpu_memory_bytes: self.gpu_memory_bytes.saturating_sub(r.gpu_memory_bytes),
        }
    }
}

/// A node's Lease, held by the node, renewed `now`.
pub fn node_lease(
    node: &str,
    namespace: &str,
    duration_seconds: i32,
    total: Capacity,
    free: Capacity,
    now: jiff::Timestamp,
) -> Lease {
    let mut annotations = BTreeMap::new();
    for (key, value) in [
        (TOTAL_MEMORY, total.memory_bytes.to_string()),
        (TOTAL_SLOTS, total.slots.to_string()),
        (TOTAL_GPU_MEMORY, total.gpu_memory_bytes.to_string()),
        (FREE_MEMORY, free.memory_bytes.to_string()),
        (FREE_SLOTS, free.slots.to_string()),
        (FREE_GPU_MEMORY, free.gpu_memory_bytes.to_string()),
    ] {
        annotations.insert(key.to_string(), value);
    }
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(node)),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                LEASE_LABEL.to_string(),
                "true".to_string(),
            )])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// A node Lease's capacity figures: (total, free); `None` where an annotation is missing or
/// not a number.
pub fn capacity_of(lease: &Lease) -> Option<(Capacity, Capacity)> {
    let a = lease.metadata.annotations.as_ref()?;
    let n = |k: &str| a.get(k)?.parse::<u64>().ok();
    let total = Capacity {
        memory_bytes: n(TOTAL_MEMORY)?,
        slots: u32::try_from(n(TOTAL_SLOTS)?).ok()?,
        gpu_memory_bytes: n(TOTAL_GPU_MEMORY)?,
    };
    let free = Capacity {
        memory_bytes: n(FREE_MEMORY)?,
        slots: u32::try_from(n(FREE_SLOTS)?).ok()?,
        gpu_memory_bytes: n(FREE_GPU_MEMORY)?,
    };
    Some((total, free))
}

/// The Lease's duration in seconds (15 where it is not set, as Kubernetes' own default).
pub fn duration_of(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_duration_seconds)
        .unwrap_or(15)
}
