//! The DICOM adapter hosted by `ward serve`: each route's AE title belongs to a tenant; a
//! complete payload becomes that tenant's payload, its pipelines (stored under the route's
//! names) are queued as that tenant's jobs, and when a job succeeds its DICOM outputs are
//! exported to the route's destinations, durably, as the standalone adapter does.

use super::api::Principal;
use super::config::Role;
use super::db::Priority;
use super::storage::Reservation;
use super::submit::new_job;
use super::Service;
use crate::dicom::config::{AdapterConfig, Route};
use crate::dicom::dimse::status;
use crate::dicom::export;
use crate::dicom::route::{conditions_met, PayloadHandler};
use crate::dicom::store::Refused;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Hands the adapter's payloads to the service.
pub struct ServiceIntake {
    pub service: Arc<Service>,
    /// What each association in progress has been let write, against its tenant's quota.
    reservations: Mutex<HashMap<String, Reservation>>,
}

impl ServiceIntake {
    pub fn new(service: Arc<Service>) -> ServiceIntake {
        ServiceIntake {
            service,
            reservations: Mutex::new(HashMap::new()),
        }
    }

    fn reservations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reservation>> {
        self.reservations.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a job received by DICOM exports when it succeeds, kept beside the job.
#[derive(Serialize, Deserialize)]
struct ExportPlan {
    stage: String,
    output: String,
    destination: String,
}

const PLAN: &str = "exports-plan.json";

/// Moves `from` to `to`: a rename, or a copy when they lie on different file systems.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    let staging = to.with_extension("partial");
    copy(from, &staging)?;
    std::fs::rename(&staging, to)?;
    std::fs::remove_dir_all(from)
}

fn usage(dir: &Path) -> (u64, u64) {
    let u = crate::volumes::usage(&[dir]);
    (u.entries, u.bytes)
}

impl PayloadHandler for ServiceIntake {
    /// Every byte an association writes is reserved in its tenant's storage quota first;
    /// past the quota, its instances are refused (Out of Resources) and nothing is kept.
    fn admit(&self, called: &str, association: &str, bytes: u64) -> Result<(), Refused> {
        let service = &self.service;
        // Above the disk's high watermark every instance is refused, transiently.
        service.disk.admit().map_err(|why| Refused {
            status: status::OUT_OF_RESOURCES,
            message: why,
        })?;
        let Some(tenant) = service
            .dicom
            .as_ref()
            .and_then(|d| d.route(called))
            .and_then(|r| r.tenant.clone())
        else {
            return Ok(());
        };
        let mut all = self.reservations();
        let reservation = all
            .entry(association.to_string())
            .or_insert_with(|| service.reserve_storage(&tenant));
        reservation.grow(bytes).map_err(|over| Refused {
            status: status::OUT_OF_RESOURCES,
            message: over.to_string(),
        })
    }

    fn association_ended(&self, association: &str) {
        self.reservations().remove(association);
    }

    fn payload_complete(&self, route: &Route, payload: &Path, calling: &str) {
        let service = &self.service;
        let Some(tenant) = route.tenant.clone() else {
            tracing::error!(ae = %route.ae_title, "the route names no tenant; its payload is kept in the adapter's storage");
            return;
        };
        let id = format!(
            "pl-{}",
            crate::jobs::new_job_id().trim_start_matches("job-")
        );
        let principal = Principal {
            tenant: tenant.clone(),
            name: format!("dicom:{calling}"),
            role: Role::Operator,
        };
        // The association's instances count against the tenant's storage quota; over it,
        // the whole payload is refused and nothing already stored changes.
        let (files, bytes) = usage(payload);
        // What the association was let write, made exact (a study assembled from several
        // associations reserves here, whole).
        let reserved = payload
            .file_name()
            .and_then(|n| self.reservations().remove(&*n.to_string_lossy()));
        let mut reservation = reserved.unwrap_or_else(|| service.reserve_storage(&tenant));
        reservation.shrink(reservation.held().saturating_sub(bytes));
        if let Err(over) = reservation.grow(bytes.saturating_sub(reservation.held())) {
            tracing::error!(ae = %route.ae_title, calling = %calling, tenant = %tenant, bytes, reason = %over, "the received payload is over the tenant's storage quota; it is not kept");
            let _ = std::fs::remove_dir_all(payload);
            return;
        }
        let stored = (|| -> Result<(), String> {
            service
                .db
                .begin_payload(&tenant, &id)
                .map_err(|e| e.to_string())?;
            move_dir(payload, &service.payload_dir(&id)).map_err(|e| e.to_string())?;
            service
                .db
                .complete_payload(&id, files, bytes)
                .map_err(|e| e.to_string())
        })();
        if let Err(why) = stored {
            tracing::error!(reason = %why, "cannot take the received payload");
            let _ = service.db.forget_payload(&id);
            return;
        }
        reservation.commit();
        service.audit(
            &tenant,
            &principal.name,
            "payload.created",
            &id,
            &format!("DIMSE association to {}", route.ae_title),
        );
        // The payload is kept either way; the pipelines run only when the conditions hold.
        match conditions_met(&route.conditions, &service.payload_dir(&id)) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(ae = %route.ae_title, payload = %id, "the route's conditions are not met; nothing runs");
                return;
            }
            Err(why) => {
                tracing::warn!(payload = %id, reason = %why, "the route's conditions cannot be checked; nothing runs");
                return;
            }
        }
        for name in &route.pipeline_names {
            let pipeline = match service.db.pipeline(&tenant, name) {
                Ok(Some(p)) => p,
                _ => {
                    tracing::warn!(pipeline = %name, tenant = %tenant, "the route's pipeline is not stored; not run");
                    continue;
                }
            };
            let config = service.dicom.as_ref().expect("hosting the adapter");
            match new_job(
                service,
                &principal,
                &pipeline,
                &id,
                Priority::Normal,
                false,
                1,
            ) {
                Ok(job) => {
                    let plan: Vec<ExportPlan> = route
                        .exports
                        .iter()
                        .map(|e| ExportPlan {
                            stage: e.stage.clone(),
                            output: e.output.clone(),
                            destination: config.destinations[e.destination].name.clone(),
                        })
                        .collect();
                    let dir = service.job_dir(&job.id);
                    let planned = std::fs::create_dir_all(&dir).and_then(|()| {
                        std::fs::write(
                            dir.join(PLAN),
                            serde_json::to_vec(&plan).unwrap_or_default(),
                        )
                    });
                    if let Err(e) = planned {
                        tracing::error!(job = %job.id, error = %e, "cannot record the job's exports");
                    }
                    if let Ok(true) = service.db.transition(&job.id, &["created"], "queued") {
                        super::job_events::queued(&job.id, &tenant, &principal.name);
                        service.notify();
                    }
                }
                Err(e) => {
                    tracing::warn!(pipeline = %name, error = %e.message, "cannot queue the route's job")
                }
            }
        }
    }
}

/// After job `id` succeeded in `attempt_dir`: queues and sends the exports its route asked
/// for, on a thread of its own.
pub fn export_results(service: &Service, id: &str, attempt_dir: &Path) {
    let Some(config) = service.dicom.clone() else {
        return;
    };
    let Ok(text) = std::fs::read(service.job_dir(id).join(PLAN)) else {
        return;
    };
    let plan: Vec<ExportPlan> = serde_json::from_slice(&text).unwrap_or_default();
    let outputs: Vec<(PathBuf, &crate::dicom::config::Destination)> = plan
        .iter()
        .filter_map(|p| {
            let d = config
                .destinations
                .iter()
                .find(|d| d.name == p.destination)?;
            Some((
                attempt_dir.join("results").join(&p.stage).join(&p.output),
                d,
            ))
        })
        .collect();
    if outputs.is_empty() {
        return;
    }
    if let Err(e) = export::queue(attempt_dir, &outputs) {
        tracing::error!(job = %id, error = %e, "cannot queue the exports");
        return;
    }
    let dir = attempt_dir.to_path_buf();
    std::thread::spawn(move || export::deliver(&config, &dir));
}

/// Resumes the exports a previous run left pending.
pub fn resume_exports(service: &Service, config: &AdapterConfig) {
    let Ok(jobs) = std::fs::read_dir(service.config.state.join("jobs")) else {
        return;
    };
    for job in jobs.flatten() {
        let Ok(attempts) = std::fs::read_dir(job.path()) else {
            continue;
        };
        for attempt in attempts.flatten() {
            let dir = attempt.path();
            if export::has_pending(&dir) {
                let config = config.clone();
                std::thread::spawn(move || export::deliver(&config, &dir));
            }
        }
    }
}
