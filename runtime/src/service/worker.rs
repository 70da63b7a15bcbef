//! Running one attempt of a job: its pipeline as stored, on its payload, in a directory of
//! its own; then its state, retried while attempts remain (a job whose input is invalid is
//! not retried: it would fail again).

use super::db::JobRow;
use super::Service;
use crate::jobs::{run_job, FailureKind, JobRequest, JobStatus, NoObserver};
use crate::pipeline::Pipeline;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub fn spawn(service: Arc<Service>, job: JobRow) {
    std::thread::Builder::new()
        .name(format!("job-{}", job.id))
        .spawn(move || {
            run(&service, &job);
            service.notify();
        })
        .expect("a job thread starts");
}

/// Reads a stored pipeline, its components resolved inside the service's components
/// directory and nowhere else (registry components are exempt: their files come from the
/// component store, once verified against the tenant's keys).
pub fn stored_pipeline(service: &Service, name: &str, yaml: &str) -> Result<Pipeline, String> {
    /// Versions kept parsed; past it the cache starts again (a service with more stored
    /// versions in use than this parses some twice, no more).
    const KEPT: usize = 256;
    let key = (name.to_string(), yaml.to_string());
    let cache = || {
        service
            .parsed_pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    };
    if let Some(parsed) = cache().get(&key) {
        return Ok(parsed.clone());
    }
    let parsed = crate::pipeline::parse_stored(&service.config.components, name, yaml)?;
    let mut kept = cache();
    if kept.len() >= KEPT {
        kept.clear();
    }
    kept.insert(key, parsed.clone());
    Ok(parsed)
}

fn run(service: &Service, job: &JobRow) {
    let attempt = job.attempts + 1;
    let began = std::time::Instant::now();
    let finished = |outcome: &str, reason: Option<&str>| {
        super::job_events::finished(&job.id, &job.tenant, attempt, began, outcome, reason)
    };
    let fail = |why: String| {
        let _ = service.db.set_failure(&job.id, &why);
        if let Ok(true) = service.transition_audited(
            &job.id,
            &["running"],
            "failed",
            &job.tenant,
            "ward",
            "job.failed",
            &why,
        ) {
            finished("failed", Some(&why));
        }
    };
    // An attempt that may be tried again: queued once more, the reason kept.
    let requeue = |why: String| {
        let _ = service.db.set_failure(&job.id, &why);
        if let Ok(true) = service.transition_audited(
            &job.id,
            &["running"],
            "queued",
            &job.tenant,
            "ward",
            "job.retry",
            &why,
        ) {
            finished("retrying", Some(&why));
            super::job_events::queued(&job.id, &job.tenant, "retry");
        }
    };
    let mut pipeline = match service
        .db
        .pipeline_by_id(&job.tenant, job.pipeline_id)
        .map_err(|e| e.to_string())
        .and_then(|p| p.ok_or_else(|| format!("pipeline {} is gone", job.pipeline_id)))
        .and_then(|p| super::components::pinned(service, &p))
    {
        Ok(p) => p,
        Err(why) => return fail(why),
    };
    // Every attempt verifies its registry components against the tenant's keys as they are
    // now (a key taken out of the configuration stops new jobs); only a registry that could
    // not be reached is tried again.
    if let Err(refusal) =
        super::components::verify(service, &job.tenant, &mut pipeline, Some(super::db::now()))
    {
        let why = format!("registry component refused: {refusal}");
        // A registry that could not be reached may answer next time; a failed check will not.
        if refusal.check == "fetch" && attempt < job.max_attempts {
            return requeue(why);
        }
        return fail(why);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let preempted = Arc::new(AtomicBool::new(false));
    service
        .cancels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id.clone(), cancel.clone());
    service
        .preempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id.clone(), preempted.clone());
    let job_dir = service.attempt_dir(&job.id, attempt);
    // A directory left by an attempt that a crash interrupted is not reused.
    if job_dir.exists() {
        let _ = std::fs::remove_dir_all(&job_dir);
    }
    let payload = match job_payload(service, job) {
        Ok(p) => p,
        Err(why) => return fail(why),
    };
    let datasets = match service.db.datasets(&job.tenant) {
        Ok(all) => all
            .into_iter()
            .map(|(name, _, _)| {
                let dir = service.dataset_dir(&job.tenant, &name);
                (name, dir)
            })
            .collect(),
        Err(e) => return fail(e.to_string()),
    };
    let request = JobRequest {
        pipeline,
        payload,
        job_dir: job_dir.clone(),
        job_id: job.id.clone(),
        tenant: job.tenant.clone(),
        parameters: Default::default(),
        datasets,
        cpu_slots: 1,
        cancel: Some(cancel.clone()),
        preempted: Some(preempted.clone()),
    };
    let outcome = run_job(&service.engine, &request, Arc::new(NoObserver));
    // What the attempt left (logs, results) counts in the tenant's storage from now on.
    let left = crate::volumes::usage(&[job_dir.as_path()]).bytes;
    if let Err(e) = service.db.add_job_storage(&job.id, left) {
        tracing::error!(job = %job.id, error = %e, "cannot record the attempt's storage");
    }
    service.storage.add_stored(&job.tenant, left);
    service
        .cancels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    service
        .preempts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    // Whatever ended the attempt, a pre-emption asked of it is over: the scheduler may
    // choose again.
    let was_preempted = service
        .preempting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    let summary = match outcome {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    {
        let mut m = service.metrics.lock().unwrap_or_else(|e| e.into_inner());
        for s in &summary.stages {
            if let Some(d) = s.duration_s {
                m.stage_seconds_sum += d;
                m.stages_finished += 1;
            }
        }
    }
    if summary.status == JobStatus::Succeeded {
        if let Ok(true) = service.transition_audited(
            &job.id,
            &["running"],
            "succeeded",
            &job.tenant,
            "ward",
            "job.succeeded",
            "",
        ) {
            finished("succeeded", None);
        }
        super::dicom::export_results(service, &job.id, &job_dir);
        return;
    }
    let failure = summary.failure.clone();
    let why = failure
        .as_ref()
        .map(|f| match &f.stage {
            Some(stage) => format!("stage '{stage}': {}", f.reason.message),
            None => f.reason.message.clone(),
        })
        .unwrap_or_else(|| "failed".into());
    let kind = failure.map(|f| f.reason.kind);
    if was_preempted && matches!(kind, Some(FailureKind::Preempted | FailureKind::Cancelled)) {
        // Queued again, to run from its untouched payload once there is room; this attempt
        // is not counted against max_attempts.
        let _ = service.db.set_failure(&job.id, &why);
        if let Ok(true) = service.db.requeue_preempted(&job.id) {
            service
                .metrics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .jobs_preempted += 1;
            service.audit(&job.tenant, "ward", "job.requeued", &job.id, &why);
            finished("preempted", Some(&why));
            super::job_events::queued(&job.id, &job.tenant, "preemption");
        }
        return;
    }
    if kind == Some(FailureKind::Cancelled) {
        let _ = service.db.set_failure(&job.id, &why);
        if let Ok(true) = service.transition_audited(
            &job.id,
            &["running"],
            "cancelled",
            &job.tenant,
            "ward",
            "job.cancelled",
            "",
        ) {
            finished("cancelled", Some(&why));
        }
        return;
    }
    let retry = attempt < job.max_attempts && kind != Some(FailureKind::InvalidInput);
    if retry {
        return requeue(why);
    }
    fail(why);
}

/// The payload directory a job's stages see: its payload, or for a job on several, a
/// directory with one subdirectory per payload (hard links: nothing is copied, and the
/// stages see it read-only like any payload).
pub(super) fn job_payload(service: &Service, job: &JobRow) -> Result<std::path::PathBuf, String> {
    let ids = service
        .db
        .job_payloads(&job.id)
        .map_err(|e| e.to_string())?;
    if ids.len() <= 1 {
        return Ok(service.payload_dir(&job.payload_id));
    }
    let combined = service.job_dir(&job.id).join("payloads");
    if combined.is_dir() {
        return Ok(combined);
    }
    let staging = service.job_dir(&job.id).join(".payloads");
    let _ = std::fs::remove_dir_all(&staging);
    for id in &ids {
        link_tree(&service.payload_dir(id), &staging.join(id))
            .map_err(|e| format!("assembling payload {id}: {e}"))?;
    }
    std::fs::rename(&staging, &combined).map_err(|e| e.to_string())?;
    Ok(combined)
}

fn link_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), &target)?;
        }
    }
    Ok(())
}
