//! The audit trail: every API call, job transition and export, with tenant, principal, time
//! and object, appended to the `audit` table. Each record carries the SHA-256 of the record
//! before it and of itself, so a record changed, removed or inserted afterwards breaks the
//! chain at that point, and `ward audit verify` names it.

use super::db::{now, Db, DbError};
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub time: f64,
    pub tenant: String,
    pub principal: String,
    pub action: String,
    pub object: String,
    pub detail: String,
    pub prev: String,
    pub hash: String,
}

fn digest(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different records hash the same text.
    for field in [
        r.prev.as_str(),
        &r.seq.to_string(),
        &format!("{:.6}", r.time),
        &r.tenant,
        &r.principal,
        &r.action,
        &r.object,
        &r.detail,
    ] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends one record.
pub fn append(
    db: &Db,
    tenant: &str,
    principal: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> Result<(), DbError> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    let (seq, prev): (i64, String) = tx
        .query_row(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or((0, GENESIS.to_string()));
    let mut record = AuditRecord {
        seq: seq + 1,
        // Rounded as it is hashed, so the stored value hashes the same.
        time: (now() * 1e6).round() / 1e6,
        tenant: tenant.to_string(),
        principal: principal.to_string(),
        action: action.to_string(),
        object: object.to_string(),
        detail: detail.to_string(),
        prev,
        hash: String::new(),
    };
    record.hash = digest(&record);
    tx.execute(
        "INSERT INTO audit (seq, time, tenant, principal, action, object, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.seq,
            record.time,
            record.tenant,
            record.principal,
            record.action,
            record.object,
            record.detail,
            record.prev,
            record.hash
        ],
    )?;
    tx.commit()?;
    Ok(())
}

fn read(db: &Db, tenant: Option<&str>) -> Result<Vec<AuditRecord>, DbError> {
    let conn = db.lock();
    let mut stmt = conn.prepare(
        "SELECT seq, time, tenant, principal, action, object, detail, prev, hash FROM audit
         WHERE ?1 IS NULL OR tenant = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![tenant], |r| {
        Ok(AuditRecord {
            seq: r.get(0)?,
            time: r.get(1)?,
            tenant: r.get(2)?,
            principal: r.get(3)?,
            action: r.get(4)?,
            object: r.get(5)?,
            detail: r.get(6)?,
            prev: r.get(7)?,
            hash: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A tenant's records, oldest first.
pub fn records(db: &Db, tenant: &str) -> Result<Vec<AuditRecord>, DbError> {
    read(db, Some(tenant))
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error)]
pub enum AuditBroken {
    #[error("audit record {seq} was changed: its hash does not match its content")]
    Changed { seq: i64 },
    #[error(
        "audit record {seq} does not follow record {before}: a record was removed or inserted"
    )]
    Gap { seq: i64, before: i64 },
    #[error("audit record {seq} does not chain to the record before it")]
    Unchained { seq: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks the whole chain; returns how many records it holds.
pub fn verify(db: &Db) -> Result<usize, AuditBroken> {
    let all = read(db, None)?;
    let mut prev = GENESIS.to_string();
    let mut before = 0;
    for r in &all {
        if r.seq != before + 1 {
            return Err(AuditBroken::Gap { seq: r.seq, before });
        }
        if r.prev != prev {
            return Err(AuditBroken::Unchained { seq: r.seq });
        }
        if digest(r) != r.hash {
            return Err(AuditBroken::Changed { seq: r.seq });
        }
        prev = r.hash.clone();
        before = r.seq;
    }
    Ok(all.len())
}
