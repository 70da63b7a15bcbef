//! Tests of the real Kubernetes client: the requests it makes (against kube-rs's mock
//! transport) and its use of the FAKE API server's HTTP front over loopback.

mod fake_http;
mod kube_api_requests;
mod rbac_requests;

use crate::resources::{
    JobPhase, JobRequests, PayloadRef, PipelineRef, WardJob, WardJobSpec, WardJobStatus,
};

pub(crate) const NS: &str = "ward";

pub(crate) fn job(name: &str) -> WardJob {
    WardJob::new(
        name,
        WardJobSpec {
            tenant: "tenant-a".into(),
            pipeline: PipelineRef {
                name: "liver".into(),
                object: "liver-v1".into(),
                version: Some(1),
            },
            payload: PayloadRef {
                id: "p1".into(),
                path: "/shared/payloads/p1".into(),
            },
            priority: 0,
            requests: JobRequests {
                memory_bytes: 1 << 20,
                cpu: 1,
                gpu_memory_bytes: 0,
            },
            max_attempts: 3,
            cancel: false,
            datasets: Default::default(),
            results: "/shared/results/j".into(),
        },
    )
}

pub(crate) fn status(phase: JobPhase, node: &str) -> WardJobStatus {
    WardJobStatus {
        phase,
        node: Some(node.into()),
        attempt: 1,
        ..WardJobStatus::default()
    }
}

pub(crate) fn lease(node: &str) -> k8s_openapi::api::coordination::v1::Lease {
    let capacity = crate::lease::Capacity {
        memory_bytes: 1 << 30,
        slots: 4,
        gpu_memory_bytes: 0,
    };
    crate::lease::node_lease(
        node,
        NS,
        15,
        capacity,
        capacity,
        jiff::Timestamp::UNIX_EPOCH,
    )
}
