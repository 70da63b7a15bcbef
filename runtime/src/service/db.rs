//! The service's embedded state: one SQLite database in WAL mode, its schema brought up to
//! date by numbered migrations when it opens. Every state change is one transaction, so a
//! process killed at any moment leaves the last committed state.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Schema migrations, applied in order; `PRAGMA user_version` holds how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE pipelines (
        id INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        yaml TEXT NOT NULL,
        created REAL NOT NULL,
        UNIQUE (tenant, name, version)
    );
    CREATE TABLE payloads (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL,
        files INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        pipeline_id INTEGER NOT NULL REFERENCES pipelines (id),
        payload_id TEXT NOT NULL REFERENCES payloads (id),
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        memory INTEGER NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        failure TEXT
    );
    CREATE INDEX jobs_by_state ON jobs (state, priority, seq);
    CREATE INDEX jobs_by_tenant ON jobs (tenant, seq);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        tenant TEXT NOT NULL,
        principal TEXT NOT NULL,
        action TEXT NOT NULL,
        object TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );",
    // 2: named datasets per tenant; jobs on several payloads (Clara's input payloads).
    "CREATE TABLE datasets (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        files INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        PRIMARY KEY (tenant, name)
    );
    ALTER TABLE jobs ADD COLUMN payloads TEXT;",
    // 3: the bytes each job's attempts left (logs, results), counted in the tenant's storage.
    "ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;",
    // 4: registry components: the manifest digest each stored pipeline version is pinned to
    // (written with the version, never changed), and per tenant who signed each component,
    // its conformance verdict, and when a job first and last used it.
    "CREATE TABLE pipeline_pins (
        pipeline_id INTEGER NOT NULL REFERENCES pipelines (id),
        operator TEXT NOT NULL,
        reference TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        PRIMARY KEY (pipeline_id, operator)
    );
    CREATE TABLE component_uses (
        tenant TEXT NOT NULL,
        reference TEXT NOT NULL,
        manifest_digest TEXT NOT NULL,
        signer TEXT NOT NULL,
        conformance TEXT NOT NULL,
        verified REAL NOT NULL,
        first_used REAL,
        last_used REAL,
        PRIMARY KEY (tenant, reference, manifest_digest)
    );",
    // 5: pre-emption: whether a running job may be ended for a job of higher priority
    // (pipelines say `preemptible: false`), and how often it was.
    "ALTER TABLE jobs ADD COLUMN preemptible INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE jobs ADD COLUMN preemptions INTEGER NOT NULL DEFAULT 0;",
    // 6: the scheduler reads the oldest queued job of each tenant and priority, not the
    // whole queue, on every wake-up.
    "CREATE INDEX jobs_queue_heads ON jobs (state, tenant, priority, seq);",
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the state database: {0}")]
    Sql(#[from] rusqlite::Error),
}

pub struct Db {
    conn: Mutex<Connection>,
    /// Held while the database is open: the checkpointer stops once it is gone.
    _open: std::sync::Arc<()>,
    /// Bumped after every change to a job's row, so watchers (the UI's live updates) wake
    /// on a change instead of polling the database.
    job_changes: tokio::sync::watch::Sender<u64>,
}

/// A job's priority, Clara's four levels; `immediate` drains first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Lower = 0,
    Normal = 1,
    Higher = 2,
    Immediate = 3,
}

impl Priority {
    pub fn from_i64(v: i64) -> Priority {
        match v {
            0 => Priority::Lower,
            2 => Priority::Higher,
            3 => Priority::Immediate,
            _ => Priority::Normal,
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s {
            "lower" | "low" => Priority::Lower,
            "normal" => Priority::Normal,
            "higher" | "high" => Priority::Higher,
            "immediate" => Priority::Immediate,
            _ => return None,
        })
    }

    /// The name the configuration and the API use.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Lower => "lower",
            Priority::Normal => "normal",
            Priority::Higher => "higher",
            Priority::Immediate => "immediate",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineRow {
    pub id: i64,
    pub name: String,
    pub version: i64,
    pub created: f64,
    #[serde(skip)]
    pub yaml: String,
}

/// The manifest digest operator `operator`'s registry component is pinned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    pub operator: String,
    /// The reference as the pipeline file wrote it (`registry/repository[:tag]`).
    pub reference: String,
    pub manifest_digest: String,
}

/// A registry component a tenant's stored pipelines pin, as `GET /v1/components` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentRow {
    pub reference: String,
    pub manifest_digest: String,
    /// The stored versions (`name:version`) that pin it.
    pub pipelines: Vec<String>,
    /// The fingerprint of the key whose signature last verified.
    pub signer: Option<String>,
    /// "pass", "skipped" or "none".
    pub conformance: Option<String>,
    /// When the first and the latest job using it started (seconds since the Unix epoch).
    pub first_used: Option<f64>,
    pub last_used: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PayloadRow {
    pub id: String,
    pub state: String,
    pub files: i64,
    pub bytes: i64,
    pub created: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    #[serde(skip)]
    pub tenant: String,
    pub pipeline_id: i64,
    pub payload_id: String,
    pub priority: Priority,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    #[serde(skip)]
    pub memory: i64,
    pub created: f64,
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub failure: Option<String>,
    /// False when its pipeline says `preemptible: false`: never ended for another job.
    pub preemptible: bool,
    /// Times it was ended for a job of higher priority and queued again (these attempts do
    /// not count against `max_attempts`).
    pub preemptions: i64,
}

/// No job names payload `p` as its payload or among several (`payloads`, a JSON list of
/// ids).
const UNUSED_PAYLOAD: &str = "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.payload_id = p.id
     OR instr(coalesce(j.payloads, ''), '\"' || p.id || '\"') > 0)";

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

const JOB_COLUMNS: &str = "seq, id, tenant, pipeline_id, payload_id, priority, state, attempts, max_attempts, memory, created, started, finished, failure, preemptible, preemptions";

fn payload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PayloadRow> {
    Ok(PayloadRow {
        id: r.get(0)?,
        state: r.get(1)?,
        files: r.get(2)?,
        bytes: r.get(3)?,
        created: r.get(4)?,
    })
}

/// A row of `SELECT id, name, version, created, yaml FROM pipelines`.
fn pipeline_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PipelineRow> {
    Ok(PipelineRow {
        id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        created: r.get(3)?,
        yaml: r.get(4)?,
    })
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        tenant: r.get(2)?,
        pipeline_id: r.get(3)?,
        payload_id: r.get(4)?,
        priority: Priority::from_i64(r.get(5)?),
        state: r.get(6)?,
        attempts: r.get(7)?,
        max_attempts: r.get(8)?,
        memory: r.get(9)?,
        created: r.get(10)?,
        started: r.get(11)?,
        finished: r.get(12)?,
        failure: r.get(13)?,
        preemptible: r.get::<_, i64>(14)? != 0,
        preemptions: r.get(15)?,
    })
}

impl Db {
    /// Opens (creating) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // In WAL mode NORMAL keeps the database consistent after a crash of the process.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // Checkpoints (copying the log into the database, with an fsync) would otherwise run
        // inside whichever commit crosses 1,000 pages: a request now and then waiting tens of
        // milliseconds. A thread of its own does them, on a connection of its own.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        let open = std::sync::Arc::new(());
        start_checkpointer(path, std::sync::Arc::downgrade(&open));
        Ok(Db {
            conn: Mutex::new(conn),
            _open: open,
            job_changes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A receiver that sees a new value after each change to any job's row.
    pub fn watch_jobs(&self) -> tokio::sync::watch::Receiver<u64> {
        self.job_changes.subscribe()
    }

    fn job_changed(&self) {
        self.job_changes.send_modify(|n| *n += 1);
    }

    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn schema_version(&self) -> Result<usize, DbError> {
        Ok(self
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    // Pipelines.

    /// Stores a new version of pipeline `name` and returns it.
    pub fn add_pipeline(
        &self,
        tenant: &str,
        name: &str,
        yaml: &str,
    ) -> Result<PipelineRow, DbError> {
        self.add_pinned_pipeline(tenant, name, yaml, &[])
    }

    /// Stores a new version of pipeline `name` with the manifest digests its registry
    /// components are pinned to, in one transaction.
    pub fn add_pinned_pipeline(
        &self,
        tenant: &str,
        name: &str,
        yaml: &str,
        pins: &[Pin],
    ) -> Result<PipelineRow, DbError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let version: i64 = tx.prepare_cached("SELECT COALESCE(MAX(version), 0) + 1 FROM pipelines WHERE tenant = ?1 AND name = ?2")?.query_row(params![tenant, name], |r| r.get(0))?;
        let created = now();
        tx.prepare_cached("INSERT INTO pipelines (tenant, name, version, yaml, created) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(params![tenant, name, version, yaml, created])?;
        let id = tx.last_insert_rowid();
        for pin in pins {
            tx.prepare_cached("INSERT INTO pipeline_pins (pipeline_id, operator, reference, manifest_digest) VALUES (?1, ?2, ?3, ?4)")?.execute(params![id, pin.operator, pin.reference, pin.manifest_digest])?;
        }
        tx.commit()?;
        Ok(PipelineRow {
            id,
            name: name.to_string(),
            version,
            created,
            yaml: yaml.to_string(),
        })
    }

    pub fn pipelines(&self, tenant: &str) -> Result<Vec<PipelineRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, version, created, yaml FROM pipelines WHERE tenant = ?1 ORDER BY name, version",
        )?;
        let rows = stmt.query_map(params![tenant], pipeline_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The pins of stored pipeline version `pipeline_id`.
    pub fn pins(&self, pipeline_id: i64) -> Result<Vec<Pin>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT operator, reference, manifest_digest FROM pipeline_pins WHERE pipeline_id = ?1 ORDER BY operator",
        )?;
        let rows = stmt.query_map(params![pipeline_id], |r| {
            Ok(Pin {
                operator: r.get(0)?,
                reference: r.get(1)?,
                manifest_digest: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `tenant`'s component verified (signed by `signer`, with `conformance`);
    /// `used` is the start of the job that uses it, None when a pipeline was stored.
    pub fn record_component(
        &self,
        tenant: &str,
        reference: &str,
        manifest_digest: &str,
        signer: &str,
        conformance: &str,
        used: Option<f64>,
    ) -> Result<(), DbError> {
        self.lock().prepare_cached("INSERT INTO component_uses (tenant, reference, manifest_digest, signer, conformance, verified, first_used, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (tenant, reference, manifest_digest) DO UPDATE SET
                signer = excluded.signer, conformance = excluded.conformance, verified = excluded.verified,
                first_used = COALESCE(first_used, excluded.first_used),
                last_used = COALESCE(excluded.last_used, last_used)")?.execute(params![tenant, reference, manifest_digest, signer, conformance, now(), used])?;
        Ok(())
    }

    /// Every registry component `tenant`'s stored pipelines pin, with who signed it and
    /// when jobs used it.
    pub fn components(&self, tenant: &str) -> Result<Vec<ComponentRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT pp.reference, pp.manifest_digest, group_concat(p.name || ':' || p.version, ' '),
                    u.signer, u.conformance, u.first_used, u.last_used
             FROM pipeline_pins pp
             JOIN pipelines p ON p.id = pp.pipeline_id
             LEFT JOIN component_uses u
               ON u.tenant = p.tenant AND u.reference = pp.reference AND u.manifest_digest = pp.manifest_digest
             WHERE p.tenant = ?1
             GROUP BY pp.reference, pp.manifest_digest
             ORDER BY pp.reference, pp.manifest_digest",
        )?;
        let rows = stmt.query_map(params![tenant], |r| {
            let pipelines: String = r.get(2)?;
            let mut pipelines: Vec<String> = pipelines.split(' ').map(str::to_owned).collect();
            pipelines.sort();
            pipelines.dedup();
            Ok(ComponentRow {
                reference: r.get(0)?,
                manifest_digest: r.get(1)?,
                pipelines,
                signer: r.get(3)?,
                conformance: r.get(4)?,
                first_used: r.get(5)?,
                last_used: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Pipeline `reference` of `tenant`: an id, `name` (its latest version) or `name:version`.
    pub fn pipeline(&self, tenant: &str, reference: &str) -> Result<Option<PipelineRow>, DbError> {
        let all = self.pipelines(tenant)?;
        if let Ok(id) = reference.parse::<i64>() {
            return Ok(all.into_iter().find(|p| p.id == id));
        }
        let (name, version) = match reference.split_once(':') {
            Some((n, v)) => (n, v.parse::<i64>().ok()),
            None => (reference, None),
        };
        Ok(all
            .into_iter()
            .filter(|p| p.name == name && version.is_none_or(|v| p.version == v))
            .max_by_key(|p| p.version))
    }

    // Payloads.

    pub fn begin_payload(&self, tenant: &str, id: &str) -> Result<(), DbError> {
        self.lock()
            .prepare_cached(
                "INSERT INTO payloads (id, tenant, state, created) VALUES (?1, ?2, 'writing', ?3)",
            )?
            .execute(params![id, tenant, now()])?;
        Ok(())
    }

    pub fn complete_payload(&self, id: &str, files: u64, bytes: u64) -> Result<(), DbError> {
        self.lock()
            .prepare_cached(
                "UPDATE payloads SET state = 'complete', files = ?2, bytes = ?3 WHERE id = ?1",
            )?
            .execute(params![id, files as i64, bytes as i64])?;
        Ok(())
    }

    pub fn forget_payload(&self, id: &str) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("DELETE FROM payloads WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    pub fn payload(&self, tenant: &str, id: &str) -> Result<Option<PayloadRow>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT id, state, files, bytes, created FROM payloads WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
                payload_row,
            )
            .optional()?)
    }

    pub fn payloads(&self, tenant: &str) -> Result<Vec<PayloadRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, state, files, bytes, created FROM payloads WHERE tenant = ?1 ORDER BY created",
        )?;
        let rows = stmt.query_map(params![tenant], payload_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What `tenant` stores: its payloads, its datasets and what its jobs left.
    pub fn storage_used(&self, tenant: &str) -> Result<u64, DbError> {
        let used: i64 = self
            .lock()
            .prepare_cached(
                "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM payloads WHERE tenant = ?1)
                  + (SELECT COALESCE(SUM(bytes), 0) FROM datasets WHERE tenant = ?1)
                  + (SELECT COALESCE(SUM(stored_bytes), 0) FROM jobs WHERE tenant = ?1)",
            )?
            .query_row(params![tenant], |r| r.get(0))?;
        Ok(used.max(0) as u64)
    }

    /// Counts `bytes` more as left by job `id` (an attempt's logs and results).
    pub fn add_job_storage(&self, id: &str, bytes: u64) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("UPDATE jobs SET stored_bytes = stored_bytes + ?2 WHERE id = ?1")?
            .execute(params![id, bytes as i64])?;
        Ok(())
    }

    /// Payloads a crash left half-written: removed from the record; the caller removes
    /// their directories.
    pub fn drop_unfinished_payloads(&self) -> Result<Vec<String>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT id FROM payloads WHERE state = 'writing'")?;
        let ids: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        conn.prepare_cached("DELETE FROM payloads WHERE state = 'writing'")?
            .execute([])?;
        Ok(ids)
    }

    // Datasets.

    /// Starts dataset `name`; false when the tenant already has one of that name (datasets
    /// are immutable).
    pub fn begin_dataset(&self, tenant: &str, name: &str) -> Result<bool, DbError> {
        let n = self.lock().prepare_cached("INSERT OR IGNORE INTO datasets (tenant, name, state, created) VALUES (?1, ?2, 'writing', ?3)")?.execute(params![tenant, name, now()])?;
        Ok(n == 1)
    }

    pub fn complete_dataset(
        &self,
        tenant: &str,
        name: &str,
        files: u64,
        bytes: u64,
    ) -> Result<(), DbError> {
        self.lock().prepare_cached("UPDATE datasets SET state = 'complete', files = ?3, bytes = ?4 WHERE tenant = ?1 AND name = ?2")?.execute(params![tenant, name, files as i64, bytes as i64])?;
        Ok(())
    }

    pub fn forget_dataset(&self, tenant: &str, name: &str) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("DELETE FROM datasets WHERE tenant = ?1 AND name = ?2")?
            .execute(params![tenant, name])?;
        Ok(())
    }

    /// The tenant's complete datasets: (name, files, bytes).
    pub fn datasets(&self, tenant: &str) -> Result<Vec<(String, i64, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT name, files, bytes FROM datasets WHERE tenant = ?1 AND state = 'complete' ORDER BY name",
        )?;
        let rows = stmt.query_map(params![tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Datasets a crash left half-written: removed from the record; returned as (tenant, name).
    pub fn drop_unfinished_datasets(&self) -> Result<Vec<(String, String)>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT tenant, name FROM datasets WHERE state = 'writing'")?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        conn.prepare_cached("DELETE FROM datasets WHERE state = 'writing'")?
            .execute([])?;
        Ok(rows)
    }

    /// The extra payloads of a job created on several.
    pub fn set_job_payloads(&self, id: &str, payloads: &[String]) -> Result<(), DbError> {
        let text = serde_json::to_string(payloads).unwrap_or_default();
        self.lock()
            .prepare_cached("UPDATE jobs SET payloads = ?2 WHERE id = ?1")?
            .execute(params![id, text])?;
        Ok(())
    }

    /// Every payload of job `id`: one, or several for a job created on several.
    pub fn job_payloads(&self, id: &str) -> Result<Vec<String>, DbError> {
        let (first, all): (String, Option<String>) = self
            .lock()
            .prepare_cached("SELECT payload_id, payloads FROM jobs WHERE id = ?1")?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(all
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| vec![first]))
    }

    // Jobs.

    #[allow(clippy::too_many_arguments)]
    pub fn add_job(
        &self,
        id: &str,
        tenant: &str,
        pipeline_id: i64,
        payload_id: &str,
        priority: Priority,
        state: &str,
        max_attempts: u32,
        memory: u64,
    ) -> Result<JobRow, DbError> {
        let conn = self.lock();
        conn.prepare_cached("INSERT INTO jobs (id, tenant, pipeline_id, payload_id, priority, state, max_attempts, memory, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?.execute(params![id, tenant, pipeline_id, payload_id, priority as i64, state, max_attempts, memory as i64, now()])?;
        let row = conn
            .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row(params![id], job_row)?;
        drop(conn);
        self.job_changed();
        Ok(row)
    }

    pub fn job(&self, tenant: &str, id: &str) -> Result<Option<JobRow>, DbError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?1 AND id = ?2"),
                params![tenant, id],
                job_row,
            )
            .optional()?)
    }

    /// A page of `tenant`'s jobs after sequence number `after`, optionally in one state.
    pub fn jobs(
        &self,
        tenant: &str,
        state: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<JobRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ?1 AND seq > ?2 AND (?3 IS NULL OR state = ?3)
             ORDER BY seq LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![tenant, after, state, limit as i64], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A page of `tenant`'s jobs for the UI, newest first, with each one's pipeline name and
    /// version, filtered by state, pipeline name and priority; and how many match in all.
    pub fn jobs_for_ui(
        &self,
        tenant: &str,
        state: Option<&str>,
        pipeline: Option<&str>,
        priority: Option<Priority>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<(JobRow, String, i64)>, usize), DbError> {
        let conn = self.lock();
        let columns: String = JOB_COLUMNS
            .split(", ")
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = "j.tenant = ?1 AND (?2 IS NULL OR j.state = ?2) AND (?3 IS NULL OR p.name = ?3) AND (?4 IS NULL OR j.priority = ?4)";
        let priority = priority.map(|p| p as i64);
        let total: i64 = conn.prepare_cached(&format!("SELECT COUNT(*) FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE {filter}"))?.query_row(params![tenant, state, pipeline, priority], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {columns}, p.name, p.version FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id
             WHERE {filter} ORDER BY j.seq DESC LIMIT ?5 OFFSET ?6"
        ))?;
        let rows = stmt.query_map(
            params![
                tenant,
                state,
                pipeline,
                priority,
                limit as i64,
                offset as i64
            ],
            |r| Ok((job_row(r)?, r.get(16)?, r.get(17)?)),
        )?;
        Ok((rows.collect::<Result<_, _>>()?, total as usize))
    }

    /// The stored pipeline version with id `id`, if it is `tenant`'s: one row, where
    /// `pipeline` reads all the tenant's versions (the live list asks once per event).
    pub fn pipeline_by_id(&self, tenant: &str, id: i64) -> Result<Option<PipelineRow>, DbError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT id, name, version, created, yaml FROM pipelines WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
                pipeline_row,
            )
            .optional()?)
    }

    /// Per pipeline name of `tenant`: its jobs by state, and when one last started.
    pub fn pipeline_activity(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, String, i64, Option<f64>)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT p.name, j.state, COUNT(*), MAX(j.started) FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id
             WHERE j.tenant = ?1 GROUP BY p.name, j.state ORDER BY p.name, j.state",
        )?;
        let rows = stmt.query_map(params![tenant], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The id, state and attempts of `tenant`'s newest `limit` jobs: what the UI's live list
    /// compares to see which rows changed.
    pub fn job_states(
        &self,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(String, String, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, state, attempts FROM jobs WHERE tenant = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![tenant, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The oldest queued job of each tenant at each priority, best first: the only jobs
    /// the scheduler can start next (it takes a tenant's jobs of one priority in order), read
    /// through an index whatever the queue's length.
    pub fn queue_heads(&self) -> Result<Vec<JobRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE seq IN (
                 SELECT MIN(seq) FROM jobs WHERE state = 'queued' GROUP BY tenant, priority
             ) ORDER BY priority DESC, seq"
        ))?;
        let rows = stmt.query_map([], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every queued job, best first: priority, then age.
    pub fn queued(&self) -> Result<Vec<JobRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'queued' ORDER BY priority DESC, seq"
        ))?;
        let rows = stmt.query_map([], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn running(&self) -> Result<Vec<JobRow>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running'"
        ))?;
        let rows = stmt.query_map([], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves job `id` from `from` to `to`; false when it was not in `from`.
    pub fn transition(&self, id: &str, from: &[&str], to: &str) -> Result<bool, DbError> {
        let moved = transition_in(&self.lock(), id, from, to)?;
        if moved {
            self.job_changed();
        }
        Ok(moved)
    }

    /// Tells watchers that a job changed (after a change made through [`transition_in`]).
    pub fn jobs_changed(&self) {
        self.job_changed();
    }

    /// Sets how many attempts job `id` has made: in cluster mode the node running it counts
    /// them (a node lost mid-attempt counts one), and the record follows.
    pub fn set_attempts(&self, id: &str, attempts: i64) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("UPDATE jobs SET attempts = ?2 WHERE id = ?1")?
            .execute(params![id, attempts])?;
        self.job_changed();
        Ok(())
    }

    /// Jobs of `tenant` that ended (succeeded, failed, cancelled) before `before`, with the
    /// bytes their attempts left: what retention removes.
    pub fn expired_jobs(&self, tenant: &str, before: f64) -> Result<Vec<(String, u64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, stored_bytes FROM jobs WHERE tenant = ?1
             AND state IN ('succeeded', 'failed', 'cancelled') AND finished < ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![tenant, before], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes job `id`'s record if it is still ended (a job started again is kept).
    pub fn delete_ended_job(&self, id: &str) -> Result<bool, DbError> {
        let n = self
            .lock()
            .prepare_cached(
                "DELETE FROM jobs WHERE id = ?1 AND state IN ('succeeded', 'failed', 'cancelled')",
            )?
            .execute(params![id])?;
        self.job_changed();
        Ok(n == 1)
    }

    /// Complete payloads of `tenant` created before `before` that no job names (as its
    /// payload or one of several), with their bytes.
    pub fn expired_payloads(
        &self,
        tenant: &str,
        before: f64,
    ) -> Result<Vec<(String, u64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, bytes FROM payloads p WHERE tenant = ?1 AND state = 'complete'
             AND created < ?2 AND {UNUSED_PAYLOAD} ORDER BY created"
        ))?;
        let rows = stmt.query_map(params![tenant, before], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes payload `id`'s record if still no job names it (one created meanwhile keeps it).
    pub fn delete_unused_payload(&self, id: &str) -> Result<bool, DbError> {
        let n = self
            .lock()
            .prepare_cached(&format!(
                "DELETE FROM payloads AS p WHERE id = ?1 AND {UNUSED_PAYLOAD}"
            ))?
            .execute(params![id])?;
        Ok(n == 1)
    }

    /// Marks job `id` as one that pre-emption never ends.
    pub fn set_not_preemptible(&self, id: &str) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("UPDATE jobs SET preemptible = 0 WHERE id = ?1")?
            .execute(params![id])?;
        self.job_changed();
        Ok(())
    }

    /// Queues running job `id` again after pre-emption ended its attempt: the attempt is
    /// counted, and `max_attempts` grows by one so it is not counted against the job.
    /// False when the job was not running.
    pub fn requeue_preempted(&self, id: &str) -> Result<bool, DbError> {
        let n = self.lock().prepare_cached("UPDATE jobs SET state = 'queued', finished = NULL, max_attempts = max_attempts + 1,
                 preemptions = preemptions + 1
             WHERE id = ?1 AND state = 'running'")?.execute(params![id])?;
        self.job_changed();
        Ok(n == 1)
    }

    pub fn set_failure(&self, id: &str, failure: &str) -> Result<(), DbError> {
        self.lock()
            .prepare_cached("UPDATE jobs SET failure = ?2 WHERE id = ?1")?
            .execute(params![id, failure])?;
        self.job_changed();
        Ok(())
    }

    /// Counts of jobs by state, for the metrics.
    /// Jobs by tenant and state.
    pub fn job_counts_by_tenant(&self) -> Result<Vec<(String, String, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT tenant, state, COUNT(*) FROM jobs GROUP BY tenant, state ORDER BY tenant, state",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn job_counts(&self) -> Result<Vec<(String, i64)>, DbError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// [`Db::transition`] on a connection (or transaction) the caller holds, so the change can
/// share a transaction with its audit record; the caller tells watchers after committing.
pub fn transition_in(
    conn: &Connection,
    id: &str,
    from: &[&str],
    to: &str,
) -> Result<bool, DbError> {
    let current: Option<String> = conn
        .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    match current {
        Some(s) if from.contains(&s.as_str()) => {
            // Every statement names ?3, the time, so the parameters always fit.
            let stamp = match to {
                "running" => "started = ?3, attempts = attempts + 1,",
                "succeeded" | "failed" | "cancelled" => "finished = ?3,",
                _ => "finished = CASE WHEN ?3 IS NULL THEN finished ELSE NULL END,",
            };
            conn.prepare_cached(&format!("UPDATE jobs SET {stamp} state = ?2 WHERE id = ?1"))?
                .execute(params![id, to, now()])?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// How often the checkpointer moves the write-ahead log into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Checkpoints the database at `path` every [`CHECKPOINT_EVERY`] while `open` lives. A
/// passive checkpoint never waits for the writer: commits go on appending to the log while
/// it copies, and the log starts again from its beginning once all of it is copied.
fn start_checkpointer(path: &Path, open: std::sync::Weak<()>) {
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("db-checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(db = %path.display(), error = %e, "the checkpointer cannot open the database");
                    return;
                }
            };
            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
            while open.upgrade().is_some() {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(db = %path.display(), error = %e, "checkpoint failed; tried again");
                }
            }
            // The last one, so the log left behind is short.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the checkpointer; the log grows until the service restarts");
    }
}
