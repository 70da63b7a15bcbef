//! Submitting a job: checked against the tenant's highest priority and memory quota and the
//! node's capacity (its stages' memory and its port channels' budget), recorded, audited,
//! and queued when asked. Used by the API and by the DICOM adapter when `ward serve` hosts it.

use super::api::{ApiError, Principal};
use super::db::{JobRow, PipelineRow, Priority};
use super::scheduler::job_memory;
use super::worker::stored_pipeline;
use super::Service;
use axum::http::StatusCode;

/// The refusal of a job asking for more than its tenant's `max-priority`.
fn priority_not_allowed(tenant: &super::config::Tenant, asked: Priority) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "priority-not-allowed",
        format!(
            "tenant '{}' may submit jobs at priority '{}' at most; '{}' was asked",
            tenant.name,
            tenant.max_priority.name(),
            asked.name()
        ),
    )
}

/// Creates a job of `pipeline` on payload `payload_id` for the caller's tenant, checked
/// against the tenant's memory quota and the node's capacity, queued at once if `start`.
pub fn new_job(
    service: &Service,
    principal: &Principal,
    pipeline: &PipelineRow,
    payload_id: &str,
    priority: Priority,
    start: bool,
    max_attempts: u32,
) -> Result<JobRow, ApiError> {
    let parsed = stored_pipeline(service, &pipeline.name, &pipeline.yaml)
        .map_err(|why| ApiError::bad_request("invalid-pipeline", why))?;
    let tenant = service.config.tenant(&principal.tenant).cloned();
    if let Some(t) = tenant.as_ref().filter(|t| priority > t.max_priority) {
        return Err(priority_not_allowed(t, priority));
    }
    if let Some(big) = parsed.stages.iter().find(|s| {
        tenant
            .as_ref()
            .is_some_and(|t| s.requests.memory_bytes > t.quotas.memory)
    }) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "over-quota",
            format!(
                "stage '{}' asks for {} bytes of memory, over the tenant's quota",
                big.name, big.requests.memory_bytes
            ),
        ));
    }
    let has_ports = parsed.stages.iter().any(|s| !s.ports_out.is_empty());
    let budget = parsed.ports_budget.bytes;
    let memory_quota = tenant.as_ref().map_or(u64::MAX, |t| t.quotas.memory);
    if has_ports && budget > memory_quota {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "over-quota",
            format!(
                "the job's channel budget (ports-budget) is {budget} bytes of host memory, over the tenant's memory quota of {memory_quota} bytes"
            ),
        ));
    }
    if has_ports && budget > service.engine.max_ports_budget() {
        return Err(ApiError::bad_request(
            "over-capacity",
            format!(
                "the job's channel budget (ports-budget) is {budget} bytes; this node allows at most {} for one job's port channels",
                service.engine.max_ports_budget()
            ),
        ));
    }
    let gpu_quota = tenant.as_ref().map_or(0, |t| t.quotas.gpu_memory);
    if let Some(gpu) = parsed
        .stages
        .iter()
        .find(|s| s.requests.gpu_memory_bytes > gpu_quota)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "over-quota",
            format!(
                "stage '{}' asks for {} bytes of GPU memory; the tenant's GPU quota is {gpu_quota}",
                gpu.name, gpu.requests.gpu_memory_bytes
            ),
        ));
    }
    let memory = job_memory(&parsed);
    if memory > service.config.capacity_memory {
        return Err(ApiError::bad_request(
            "over-capacity",
            format!(
                "the job needs {memory} bytes of memory at once; this node has {}",
                service.config.capacity_memory
            ),
        ));
    }
    let id = crate::jobs::new_job_id();
    let state = if start { "queued" } else { "created" };
    let mut row = service.db.add_job(
        &id,
        &principal.tenant,
        pipeline.id,
        payload_id,
        priority,
        state,
        max_attempts,
        memory,
    )?;
    if !parsed.preemptible {
        service.db.set_not_preemptible(&id)?;
        row.preemptible = false;
    }
    service.audit(
        &principal.tenant,
        &principal.name,
        "job.created",
        &id,
        &format!(
            "pipeline {}:{}, payload {payload_id}, {state}",
            pipeline.name, pipeline.version
        ),
    );
    if start {
        super::job_events::queued(&id, &principal.tenant, &principal.name);
        service.notify();
    }
    Ok(row)
}
