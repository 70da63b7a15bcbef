//! The pipelines, DICOM and system pages.

use super::jobs::blocking_ui;
use super::{format, page, Chrome, Signed, UiError};
use crate::service::{audit, Service};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct PipelineItem {
    pub name: String,
    pub versions: i64,
    pub latest: String,
    pub last_run: String,
    pub jobs: i64,
    pub by_state: String,
}

#[derive(Template)]
#[template(path = "ui/pipelines.html")]
struct PipelinesPage {
    chrome: Chrome,
    pipelines: Vec<PipelineItem>,
}

pub async fn pipelines(
    State(service): State<Arc<Service>>,
    signed: Signed,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let tenant = &signed.principal().tenant;
        let mut items: BTreeMap<String, PipelineItem> = BTreeMap::new();
        for p in service.db.pipelines(tenant)? {
            let e = items.entry(p.name.clone()).or_insert_with(|| PipelineItem {
                name: p.name.clone(),
                versions: 0,
                latest: String::new(),
                last_run: "never".into(),
                jobs: 0,
                by_state: String::new(),
            });
            e.versions += 1;
            e.latest = format!("v{} at {}", p.version, format::utc(Some(p.created)));
        }
        let mut last: BTreeMap<String, f64> = BTreeMap::new();
        for (name, state, count, started) in service.db.pipeline_activity(tenant)? {
            if let Some(e) = items.get_mut(&name) {
                e.jobs += count;
                if !e.by_state.is_empty() {
                    e.by_state.push_str(", ");
                }
                e.by_state.push_str(&format!("{count} {state}"));
            }
            if let Some(t) = started {
                let l = last.entry(name).or_insert(t);
                *l = l.max(t);
            }
        }
        for (name, t) in last {
            if let Some(e) = items.get_mut(&name) {
                e.last_run = format::utc(Some(t));
            }
        }
        page(&PipelinesPage {
            chrome: signed.chrome(&service, "pipelines"),
            pipelines: items.into_values().collect(),
        })
    })
    .await
}

pub struct Received {
    pub when: String,
    pub calling: String,
    pub called: String,
    pub payload: String,
    pub instances: i64,
    pub bytes: String,
}

pub struct ExportSummary {
    pub job: String,
    pub destination: String,
    pub stored: usize,
    pub pending: usize,
    pub failed: usize,
    pub attempts: u64,
    pub message: String,
}

#[derive(Template)]
#[template(path = "ui/dicom.html")]
struct DicomPage {
    chrome: Chrome,
    adapter: bool,
    received: Vec<Received>,
    exports: Vec<ExportSummary>,
}

/// Jobs whose exports the page reads.
const EXPORT_JOBS: usize = 100;

pub async fn dicom(
    State(service): State<Arc<Service>>,
    signed: Signed,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let tenant = signed.principal().tenant.clone();
        let received = audit::dicom_receipts(&service.db, &tenant, 100)?
            .into_iter()
            .map(|(time, principal, detail, payload)| {
                let row = service.db.payload(&tenant, &payload).ok().flatten();
                Received {
                    when: format::utc(Some(time)),
                    calling: principal.trim_start_matches("dicom:").to_string(),
                    called: detail
                        .rsplit_once(" to ")
                        .map_or(detail.as_str(), |(_, ae)| ae)
                        .to_string(),
                    instances: row.as_ref().map_or(0, |r| r.files),
                    bytes: format::bytes(row.map_or(0, |r| r.bytes.max(0) as u64)),
                    payload,
                }
            })
            .collect();
        let mut exports = Vec::new();
        let (jobs, _) = service
            .db
            .jobs_for_ui(&tenant, None, None, None, 0, EXPORT_JOBS)?;
        for (job, _, _) in jobs {
            let Some(dir) = service.latest_attempt_dir(&job.id, job.attempts) else {
                continue;
            };
            let Some(records) = std::fs::read(dir.join("exports.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            else {
                continue;
            };
            let mut by_destination: BTreeMap<String, ExportSummary> = BTreeMap::new();
            for r in records.as_array().into_iter().flatten() {
                let d = r["destination"].as_str().unwrap_or_default().to_string();
                let e = by_destination
                    .entry(d.clone())
                    .or_insert_with(|| ExportSummary {
                        job: job.id.clone(),
                        destination: d,
                        stored: 0,
                        pending: 0,
                        failed: 0,
                        attempts: 0,
                        message: String::new(),
                    });
                if r["ok"] == true {
                    e.stored += 1;
                } else if r["pending"] == true {
                    e.pending += 1;
                } else {
                    e.failed += 1;
                }
                e.attempts = e.attempts.max(r["attempts"].as_u64().unwrap_or(0));
                e.message = r["message"].as_str().unwrap_or_default().to_string();
            }
            exports.extend(by_destination.into_values());
        }
        page(&DicomPage {
            chrome: signed.chrome(&service, "dicom"),
            adapter: service.dicom.is_some(),
            received,
            exports,
        })
    })
    .await
}

#[derive(Template)]
#[template(path = "ui/system.html")]
struct SystemPage {
    chrome: Chrome,
    mode: &'static str,
    running: usize,
    slots: usize,
    memory_used: String,
    memory_capacity: String,
    queued: usize,
    tenant_running: usize,
    tenant_quota: usize,
}

pub async fn system(
    State(service): State<Arc<Service>>,
    signed: Signed,
) -> Result<Response, UiError> {
    blocking_ui(move || {
        let running = service.db.running()?;
        let queued = service.db.queued()?;
        let tenant = &signed.principal().tenant;
        let cluster = service.mode == crate::service::Mode::Cluster;
        page(&SystemPage {
            chrome: signed.chrome(&service, "system"),
            mode: if cluster {
                "cluster (jobs run on node runtimes)"
            } else {
                "embedded (jobs run on this machine)"
            },
            running: running.len(),
            slots: service.config.capacity_jobs,
            memory_used: format::bytes(running.iter().map(|r| r.memory.max(0) as u64).sum()),
            memory_capacity: format::bytes(service.config.capacity_memory),
            queued: queued.len(),
            tenant_running: running.iter().filter(|r| &r.tenant == tenant).count(),
            tenant_quota: service
                .config
                .tenant(tenant)
                .map_or(0, |t| t.quotas.concurrent_jobs),
        })
    })
    .await
}
