//! `ward serve --cluster`: the control plane. The service keeps its record (pipelines,
//! payloads, tenants, the audit trail, jobs as the API shows them) in its own database on the
//! shared volume, but runs no job itself: each queued job becomes a `WardJob` that a node
//! runtime claims and runs, and the job's row follows the WardJob's status
//! ([`super::cluster_status`]).
//!
//! Dispatch is idempotent: a WardJob is named by its job id, so a create that finds it
//! already there (409 AlreadyExists) means the job was handed over before, by this process or
//! by the one that ran before a restart. Payloads, datasets and results are named by their
//! absolute paths on the shared volume, which every node mounts at the same place.

use super::db::{JobRow, PipelineRow};
use super::Service;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use ward_cluster::resources::{JobRequests, PayloadRef, PinnedComponent, PipelineRef};
use ward_cluster::{ApiError, ClusterApi, WardJob, WardJobSpec, WardPipeline, WardPipelineSpec};

/// How often the queue is read again when nothing woke the dispatcher (a create that failed
/// because the API server could not be reached is retried then).
const REDISPATCH_EVERY: Duration = Duration::from_secs(5);
/// How long the status watch waits before starting over after the API server failed it.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The dispatcher's side of the service: what the API and the submission code reach it by.
pub struct Link {
    /// The namespace the WardJobs are in.
    pub namespace: String,
    wake: Notify,
    cancels: mpsc::UnboundedSender<String>,
    /// Whether the last request to the API server was answered.
    reachable: AtomicBool,
}

impl Link {
    /// The queue changed: dispatch what is queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Asks for job `id`'s WardJob to be stopped.
    pub fn cancel(&self, id: &str) {
        let _ = self.cancels.send(id.to_string());
    }

    /// Whether the API server answered the last request made to it.
    pub fn api_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    pub(super) fn answered<T>(&self, answer: &Result<T, ApiError>) {
        let up = !matches!(answer, Err(ApiError::Other(_)));
        self.reachable.store(up, Ordering::Relaxed);
    }
}

/// Starts the control plane's tasks on the current tokio runtime: the dispatcher, the
/// cancellations and the status watch. The service must have been opened in cluster mode.
pub fn start<A: ClusterApi>(service: &Arc<Service>, api: A, namespace: &str) -> Arc<Link> {
    let (cancels, cancel_rx) = mpsc::unbounded_channel();
    let link = Arc::new(Link {
        namespace: namespace.to_string(),
        wake: Notify::new(),
        cancels,
        reachable: AtomicBool::new(true),
    });
    if service.cluster.set(link.clone()).is_err() {
        panic!("the cluster dispatcher is started once per service");
    }
    service.start_housekeeping();
    tokio::spawn(dispatch(service.clone(), api.clone(), link.clone()));
    tokio::spawn(cancel(api.clone(), link.clone(), cancel_rx));
    tokio::spawn(super::cluster_status::follow(
        service.clone(),
        api,
        link.clone(),
        WATCH_RETRY,
    ));
    link
}

/// Hands every queued job to the cluster, whenever woken and every [`REDISPATCH_EVERY`].
async fn dispatch<A: ClusterApi>(service: Arc<Service>, api: A, link: Arc<Link>) {
    // The WardJobs and WardPipelines known to exist; empty at start, so a restart dispatches
    // every queued job again (and finds those already there).
    let mut dispatched: HashSet<String> = HashSet::new();
    let mut pipelines: HashSet<String> = HashSet::new();
    loop {
        match service.db.queued() {
            Ok(queued) => {
                let fresh: Vec<&JobRow> = queued
                    .iter()
                    .filter(|r| !dispatched.contains(&r.id))
                    .collect();
                for row in fresh {
                    if dispatch_one(&service, &api, &link, &mut pipelines, row).await {
                        dispatched.insert(row.id.clone());
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "the control plane cannot read the queue"),
        }
        let _ = tokio::time::timeout(REDISPATCH_EVERY, link.wake.notified()).await;
    }
}

/// Creates job `row`'s WardJob (and its pipeline's WardPipeline); true once it exists.
async fn dispatch_one<A: ClusterApi>(
    service: &Service,
    api: &A,
    link: &Link,
    pipelines: &mut HashSet<String>,
    row: &JobRow,
) -> bool {
    let (pipeline, job) = match ward_job(service, row) {
        Ok(made) => made,
        Err(why) => {
            // What cannot be described to a node would fail on every node: the job fails,
            // as the embedded worker fails it.
            let _ = service.db.set_failure(&row.id, &why);
            if let Ok(true) = service.db.transition(&row.id, &["queued"], "failed") {
                service.audit(&row.tenant, "ward", "job.failed", &row.id, &why);
                super::job_events::finished(
                    &row.id,
                    &row.tenant,
                    row.attempts,
                    std::time::Instant::now(),
                    "failed",
                    Some(&why),
                );
            }
            return true;
        }
    };
    let object = pipeline.metadata.name.clone().unwrap_or_default();
    if !pipelines.contains(&object) {
        let answer = api.create_pipeline(&pipeline).await;
        link.answered(&answer);
        match answer {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => {
                pipelines.insert(object);
            }
            Err(e) => {
                tracing::warn!(job = %row.id, error = %e, "cannot create the job's WardPipeline; trying again");
                return false;
            }
        }
    }
    let answer = api.create_job(&job).await;
    link.answered(&answer);
    match answer {
        Ok(_) => {
            tracing::info!(job = %row.id, tenant = %row.tenant, namespace = %link.namespace, "job handed to the cluster");
            service.audit(
                &row.tenant,
                "ward",
                "job.dispatched",
                &row.id,
                &link.namespace,
            );
        }
        Err(ApiError::AlreadyExists(_)) => {}
        Err(e) => {
            tracing::warn!(job = %row.id, error = %e, "cannot create the WardJob; trying again");
            return false;
        }
    }
    // Cancelled through the API while it was being created: the cancellation may have
    // found no WardJob yet.
    if let Ok(Some(now)) = service.db.job(&row.tenant, &row.id) {
        if now.state == "cancelled" {
            link.cancel(&row.id);
        }
    }
    true
}

/// Sets `spec.cancel` on the WardJob of each job cancelled through the API.
async fn cancel<A: ClusterApi>(api: A, link: Arc<Link>, mut ids: mpsc::UnboundedReceiver<String>) {
    while let Some(id) = ids.recv().await {
        let answer = api.cancel_job(&id).await;
        link.answered(&answer);
        match answer {
            Ok(_) => tracing::info!(job = %id, "WardJob cancel requested"),
            // Not handed over yet: the dispatcher checks the row after it creates it.
            Err(ApiError::NotFound(_)) => {}
            Err(e) => tracing::warn!(job = %id, error = %e, "cannot cancel the WardJob"),
        }
    }
}

/// The name of the WardPipeline holding version `version` of `tenant`'s pipeline `name`: a
/// DNS-1123 name (Kubernetes object names are lower case letters, digits, '-' and '.').
pub fn pipeline_object_name(tenant: &str, name: &str, version: i64) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("{}-{}-v{version}", clean(tenant), clean(name))
}

/// An absolute path: every node mounts the shared volume at the same place, so a path is
/// only meaningful to them whole.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// The WardPipeline and the WardJob that describe job `row` to a node.
pub fn ward_job(service: &Service, row: &JobRow) -> Result<(WardPipeline, WardJob), String> {
    let stored: PipelineRow = service
        .db
        .pipelines(&row.tenant)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|p| p.id == row.pipeline_id)
        .ok_or_else(|| format!("pipeline {} is gone", row.pipeline_id))?;
    let parsed = super::components::pinned(service, &stored)?;
    let pins = service.db.pins(stored.id).map_err(|e| e.to_string())?;
    let object = pipeline_object_name(&row.tenant, &stored.name, stored.version);
    let pipeline = WardPipeline::new(
        &object,
        WardPipelineSpec {
            tenant: row.tenant.clone(),
            name: stored.name.clone(),
            version: stored.version as u32,
            document: stored.yaml.clone(),
            components_dir: text(&absolute(&service.config.components)?),
            components: pins
                .into_iter()
                .map(|p| PinnedComponent {
                    operator: p.operator,
                    reference: p.reference,
                    digest: p.manifest_digest,
                })
                .collect(),
        },
    );
    // Stages joined by ports run together: a job holds the most that runs at once.
    let at_once = |of: &dyn Fn(&crate::pipeline::Requests) -> u64| {
        parsed
            .stages
            .iter()
            .map(|s| {
                of(&s.requests)
                    + s.port_peers
                        .iter()
                        .map(|&p| of(&parsed.stages[p].requests))
                        .sum::<u64>()
            })
            .max()
            .unwrap_or(0)
    };
    let payload = super::worker::job_payload(service, row)?;
    let datasets: BTreeMap<String, String> = service
        .db
        .datasets(&row.tenant)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(name, _, _)| {
            let dir = absolute(&service.dataset_dir(&row.tenant, &name))?;
            Ok((name, text(&dir)))
        })
        .collect::<Result<_, String>>()?;
    let job = WardJob::new(
        &row.id,
        WardJobSpec {
            tenant: row.tenant.clone(),
            pipeline: PipelineRef {
                name: stored.name.clone(),
                object,
                version: Some(stored.version as u32),
            },
            payload: PayloadRef {
                id: row.payload_id.clone(),
                path: text(&absolute(&payload)?),
            },
            priority: row.priority as i32,
            requests: JobRequests {
                memory_bytes: row.memory.max(0) as u64,
                cpu: at_once(&|r| u64::from(r.cpu)).max(1) as u32,
                gpu_memory_bytes: at_once(&|r| r.gpu_memory_bytes),
            },
            max_attempts: row.max_attempts.max(1) as u32,
            cancel: false,
            datasets,
            results: text(&absolute(&service.job_dir(&row.id))?),
        },
    );
    Ok((pipeline, job))
}
