//! `ward serve`: the job service. One process with embedded state (SQLite) that a hospital
//! runs for many tenants: pipelines (versioned), payloads (immutable once complete), jobs in
//! a priority queue scheduled against the node's capacity and fair across tenants, a REST
//! API, and a hash-chained audit trail. Killed at any moment and restarted, it loses no job
//! and no payload: running jobs re-run from their untouched payloads.

pub mod api;
pub mod archive;
pub mod audit;
pub mod cluster_dispatch;
mod cluster_status;
pub mod components;
pub mod config;
pub mod config_check;
mod config_file;
pub mod db;
pub mod dicom;
pub mod disk;
pub mod http;
mod job_events;
pub mod multipart;
#[cfg(test)]
mod mutation;
pub mod retention;
pub mod scheduler;
pub mod storage;
pub mod submit;
pub mod tls;
pub mod ui;
mod worker;

use crate::engine::Engine;
use config::ServeConfig;
use db::{Db, DbError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};

pub struct Service {
    pub config: ServeConfig,
    pub db: Db,
    engine: Arc<Engine>,
    /// Set when the queue or the running set changed; the scheduler waits on it.
    wake: (Mutex<bool>, Condvar),
    /// Cancellation flags of the running jobs.
    cancels: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Pre-emption flags of the running jobs, set with their cancellation flag when a job
    /// is ended for one of higher priority; `preempting` holds those not yet ended.
    pub(super) preempts: Mutex<HashMap<String, Arc<AtomicBool>>>,
    pub preempting: Mutex<std::collections::HashSet<String>>,
    pub metrics: Mutex<Metrics>,
    /// The disk watermarks DIMSE and STOW-RS ingest stop and resume at.
    pub disk: disk::DiskGuard,
    /// The DICOM adapter's configuration, when this service hosts it.
    pub dicom: Option<crate::dicom::config::AdapterConfig>,
    /// The audit chain's key and head.
    audit_chain: audit::Chain,
    /// Refused and unauthenticated requests, counted before they reach the audit trail.
    pub refusals: api::refusals::Refusals,
    /// Each tenant's stored and reserved bytes, against its storage quota.
    pub storage: storage::StorageLedger,
    /// The registry client and the store of verified registry components.
    pub components: components::Components,
    /// How jobs run: here (embedded) or as WardJobs on Kubernetes nodes (cluster).
    pub mode: Mode,
    /// The cluster dispatcher's side of the service, once it started (cluster mode only).
    pub cluster: std::sync::OnceLock<Arc<cluster_dispatch::Link>>,
    /// The web UI's sessions and rendered pictures.
    pub ui: ui::UiState,
    /// Stored pipeline versions already parsed, by name and text (a version never changes):
    /// every submission and every job would otherwise parse its YAML again.
    pub(super) parsed_pipelines: Mutex<HashMap<(String, String), crate::pipeline::Pipeline>>,
}

/// Where a service's jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// By this process's scheduler and workers (`ward serve`).
    #[default]
    Embedded,
    /// By node runtimes, as WardJobs the service creates (`ward serve --cluster`).
    Cluster,
}

/// Counters for `/metrics` that the database does not hold.
#[derive(Default)]
pub struct Metrics {
    pub stage_seconds_sum: f64,
    pub stages_finished: u64,
    pub payloads_uploaded: u64,
    pub bytes_uploaded: u64,
    pub api_requests: u64,
    /// Requests answered 401: no valid token.
    pub api_unauthorized: u64,
    /// Requests answered 403: a token without the right to it.
    pub api_forbidden: u64,
    /// Connections closed on accept because `http.max-connections` were open.
    pub connections_refused: u64,
    /// Running jobs ended to make room for a job of higher priority.
    pub jobs_preempted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Dicom(#[from] crate::dicom::config::ConfigError),
    #[error(transparent)]
    Audit(#[from] audit::AuditSetupError),
    #[error("the DICOM adapter's route {ae}: {message}")]
    Route { ae: String, message: String },
    #[error(transparent)]
    Components(#[from] components::ComponentsSetupError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Service {
    /// Opens the state directory, recovering from whatever a crash left: half-written
    /// payloads are removed, jobs that were running go back to the queue.
    pub fn open(config: ServeConfig, engine: Arc<Engine>) -> Result<Arc<Service>, ServiceError> {
        Self::open_in(config, engine, Mode::Embedded)
    }

    /// As [`Service::open`], for jobs run in `mode`: in cluster mode a job that was running
    /// is held by a node and stays running (its WardJob's status says how it ends).
    pub fn open_in(
        config: ServeConfig,
        engine: Arc<Engine>,
        mode: Mode,
    ) -> Result<Arc<Service>, ServiceError> {
        for dir in [
            config.state.clone(),
            config.state.join("payloads"),
            config.state.join("jobs"),
            config.state.join("uploads"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|source| ServiceError::Io { path: dir, source })?;
        }
        let db = Db::open(&config.state.join("ward.db"))?;
        let dicom = match &config.dicom {
            Some(path) => Some(crate::dicom::config::AdapterConfig::load(path)?),
            None => None,
        };
        for route in dicom.iter().flat_map(|d| &d.routes) {
            if let Some(message) = config_check::route_misfit(&config, route) {
                return Err(ServiceError::Route {
                    ae: route.ae_title.clone(),
                    message,
                });
            }
        }
        let audit_key =
            audit::load_or_generate_key(config.audit_key_file.as_deref(), &config.state)?;
        let audit_chain = audit::Chain::open(&db, audit_key, &config.state)?;
        let components = components::Components::open(&config)?;
        let disk = disk::DiskGuard::new(config.state.clone(), config.disk);
        let service = Arc::new(Service {
            dicom,
            config,
            db,
            audit_chain,
            refusals: api::refusals::Refusals::default(),
            engine,
            wake: (Mutex::new(false), Condvar::new()),
            cancels: Mutex::new(HashMap::new()),
            preempts: Mutex::new(HashMap::new()),
            preempting: Mutex::new(std::collections::HashSet::new()),
            parsed_pipelines: Mutex::new(HashMap::new()),
            metrics: Mutex::new(Metrics::default()),
            disk,
            storage: storage::StorageLedger::default(),
            components,
            mode,
            cluster: std::sync::OnceLock::new(),
            ui: ui::UiState::default(),
        });
        service.recover()?;
        for tenant in &service.config.tenants {
            let stored = service.db.storage_used(&tenant.name)?;
            service.storage.set_stored(&tenant.name, stored);
        }
        if let Some(config) = &service.dicom {
            dicom::resume_exports(&service, config);
        }
        Ok(service)
    }

    fn recover(&self) -> Result<(), ServiceError> {
        for id in self.db.drop_unfinished_payloads()? {
            let _ = std::fs::remove_dir_all(self.payload_dir(&id));
        }
        for (tenant, name) in self.db.drop_unfinished_datasets()? {
            let _ = std::fs::remove_dir_all(self.dataset_dir(&tenant, &name));
        }
        let uploads = self.config.state.join("uploads");
        if let Ok(entries) = std::fs::read_dir(&uploads) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
                let _ = std::fs::remove_file(e.path());
            }
        }
        if self.mode == Mode::Cluster {
            return Ok(());
        }
        for job in self.db.running()? {
            if self.db.transition(&job.id, &["running"], "queued")? {
                tracing::warn!(job = %job.id, "the job was running when the service stopped; it runs again from its payload");
                audit::append(
                    &self.db,
                    &self.audit_chain,
                    &job.tenant,
                    "ward",
                    "job.requeued",
                    &job.id,
                    "running when the service stopped",
                )?;
                job_events::queued(&job.id, &job.tenant, "restart");
            }
        }
        Ok(())
    }

    pub fn payload_dir(&self, id: &str) -> PathBuf {
        self.config.state.join("payloads").join(id)
    }

    pub fn dataset_dir(&self, tenant: &str, name: &str) -> PathBuf {
        self.config.state.join("datasets").join(tenant).join(name)
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.config.state.join("jobs").join(id)
    }

    /// The directory of attempt `attempt` of job `id`.
    pub fn attempt_dir(&self, id: &str, attempt: i64) -> PathBuf {
        self.job_dir(id).join(format!("attempt-{attempt}"))
    }

    /// The latest attempt's directory of job `id`, if it ran.
    pub fn latest_attempt_dir(&self, id: &str, attempts: i64) -> Option<PathBuf> {
        (attempts > 0).then(|| self.attempt_dir(id, attempts))
    }

    /// A reservation against `tenant`'s storage quota, for an upload to grow as it writes.
    pub fn reserve_storage(&self, tenant: &str) -> storage::Reservation {
        let quota = self.config.tenant(tenant).map_or(0, |t| t.quotas.storage);
        self.storage.reserve(tenant, quota)
    }

    /// Records an event in the audit trail; a failure to record is logged (the state change
    /// it records has happened).
    pub fn audit(&self, tenant: &str, principal: &str, action: &str, object: &str, detail: &str) {
        if let Err(e) = audit::append(
            &self.db,
            &self.audit_chain,
            tenant,
            principal,
            action,
            object,
            detail,
        ) {
            tracing::error!(error = %e, action, object, "cannot write the audit trail");
        }
    }

    /// Moves job `id` from `from` to `to` and records `action` by `principal` in the audit
    /// trail, in one transaction; false when the job was not in `from` (nothing recorded).
    #[allow(clippy::too_many_arguments)]
    pub fn transition_audited(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        tenant: &str,
        principal: &str,
        action: &str,
        detail: &str,
    ) -> Result<bool, db::DbError> {
        let entry = audit::Entry {
            tenant,
            principal,
            action,
            object: id,
            detail,
        };
        let moved = audit::change_and_append(
            &self.db,
            &self.audit_chain,
            |conn| db::transition_in(conn, id, from, to),
            &entry,
        )?;
        if moved {
            self.db.jobs_changed();
        }
        Ok(moved)
    }

    /// The counters for `/metrics`.
    pub fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the scheduler.
    pub fn notify(&self) {
        let (flag, cv) = &self.wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        if let Some(link) = self.cluster.get() {
            link.wake();
        }
    }

    /// Ends running job `id` to make room for a job of higher priority: its stages end as
    /// `preempted` and its worker queues it again. False when it is not running here.
    pub fn preempt_running(&self, id: &str) -> bool {
        let Some(preempt) = self
            .preempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
        else {
            return false;
        };
        self.preempting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        preempt.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(flag) = self
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        true
    }

    /// Asks a running job to stop.
    pub fn cancel_running(&self, id: &str) {
        if let Some(flag) = self
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        self.cancel_dispatched(id);
    }

    /// Asks for job `id`'s WardJob to be stopped, in cluster mode (a job cancelled while
    /// queued may already have been handed to the cluster).
    pub fn cancel_dispatched(&self, id: &str) {
        if let Some(link) = self.cluster.get() {
            link.cancel(id);
        }
    }

    /// Starts the scheduler on a thread of its own.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || scheduler::run(me))
            .expect("the scheduler thread starts");
        let me = self.clone();
        std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || retention::run(me))
            .expect("the retention thread starts");
        self.start_housekeeping();
    }

    /// Starts what runs in either mode beside the jobs: the recorder of refused requests.
    pub fn start_housekeeping(self: &Arc<Self>) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("audit-refusals".into())
            .spawn(move || loop {
                std::thread::sleep(api::refusals::FLUSH_EVERY);
                for due in me.refusals.due(std::time::Instant::now()) {
                    due.record(&me);
                }
            })
            .expect("the refusal recorder thread starts");
    }
}
