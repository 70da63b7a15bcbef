//! The audit trail: every API call, job transition and export, with tenant, principal, time
//! and object, appended to the `audit` table. Each record carries the hash of the record
//! before it and its own, an HMAC-SHA256 under the audit key (kept outside the database), so
//! a record changed, removed or inserted afterwards breaks the chain at that point, and a
//! chain recomputed without the key does not verify. After each append the head (the last
//! record's number and hash, signed with the key) is written to `audit.head` beside the
//! database, so a chain cut short at its end is found too; `ward audit head` prints it for an
//! operator to keep elsewhere and hand back to `ward audit verify --head`.
//!
//! Records written before the chain was keyed (plain SHA-256) stay as they are: the head
//! names the last of them (`legacy-until`), and they verify as they always did.

use super::db::{now, Db, DbError};
use hmac::{Hmac, Mac};
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// The `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The shortest audit key accepted, in bytes.
pub const MIN_KEY: usize = 32;

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

/// Length-prefixed fields: no two different records hash the same text.
fn fields(r: &AuditRecord, mut feed: impl FnMut(&[u8])) {
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
        feed(&(field.len() as u64).to_le_bytes());
        feed(field.as_bytes());
    }
}

/// The hash of a record written before the chain was keyed.
fn unkeyed_digest(r: &AuditRecord) -> String {
    let mut h = Sha256::new();
    fields(r, |b| h.update(b));
    hex::encode(h.finalize())
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn keyed_digest(key: &[u8], r: &AuditRecord) -> String {
    let mut m = mac(key);
    fields(r, |b| m.update(b));
    hex::encode(m.finalize().into_bytes())
}

/// Why the audit key or head cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditSetupError {
    #[error("audit key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit key {}: {len} bytes; at least {MIN_KEY} are needed", path.display())]
    ShortKey { path: PathBuf, len: usize },
    #[error("audit head {}: {message}", path.display())]
    Head { path: PathBuf, message: String },
    #[error(transparent)]
    Broken(#[from] AuditBroken),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The key in `path`: its bytes, less surrounding white space.
pub fn read_key(path: &Path) -> Result<Vec<u8>, AuditSetupError> {
    let bytes = std::fs::read(path).map_err(|source| AuditSetupError::Key {
        path: path.to_path_buf(),
        source,
    })?;
    let key = bytes.trim_ascii().to_vec();
    if key.len() < MIN_KEY {
        return Err(AuditSetupError::ShortKey {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    Ok(key)
}

/// The key generated in the state directory when none is configured.
pub fn generated_key_path(state: &Path) -> PathBuf {
    state.join("audit.key")
}

/// Where the head is kept: beside the database.
pub fn head_path(state: &Path) -> PathBuf {
    state.join("audit.head")
}

/// The configured key, or the one in the state directory (made the first time: 32 random
/// bytes, hex, readable by the owner only).
pub fn load_or_generate_key(
    configured: Option<&Path>,
    state: &Path,
) -> Result<Vec<u8>, AuditSetupError> {
    if let Some(path) = configured {
        return read_key(path);
    }
    let path = generated_key_path(state);
    if !path.exists() {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| AuditSetupError::Key {
            path: path.clone(),
            source,
        };
        let mut random = [0u8; 32];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(io)?,
            &mut random,
        )
        .map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        file.write_all(hex::encode(random).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::warn!(key = %path.display(), "no audit-key-file configured: the audit chain is keyed with a key generated in the state directory");
    }
    read_key(&path)
}

/// The end of the chain as last written: record `seq` with `hash`; records up to
/// `legacy_until` were written before the chain was keyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub legacy_until: i64,
}

impl Head {
    fn signature(&self, key: &[u8]) -> String {
        let mut m = mac(key);
        m.update(
            format!(
                "ward-audit-head\0{}\0{}\0{}",
                self.seq, self.hash, self.legacy_until
            )
            .as_bytes(),
        );
        hex::encode(m.finalize().into_bytes())
    }

    /// `SEQ:HASH`, as `ward audit head` prints it and `--head` takes it.
    pub fn anchor(&self) -> String {
        format!("{}:{}", self.seq, self.hash)
    }

    /// Writes the head to `path` atomically (a whole file renamed over the old one).
    pub fn write(&self, key: &[u8], path: &Path) -> std::io::Result<()> {
        let text = format!(
            "{} legacy-until={} mac={}\n",
            self.anchor(),
            self.legacy_until,
            self.signature(key)
        );
        let partial = path.with_extension("head.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }

    /// Reads the head in `path`, checked against its signature; `None` when there is none.
    pub fn read(key: &[u8], path: &Path) -> Result<Option<Head>, AuditSetupError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AuditSetupError::Head {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        };
        // Written by rename, never in place: an empty file is what a power cut can leave of
        // a rename whose data had not reached the disk; it is no head, as if none were kept.
        if text.trim().is_empty() {
            tracing::warn!(head = %path.display(), "the audit head file is empty; taken as missing");
            return Ok(None);
        }
        let bad = |message: &str| AuditSetupError::Head {
            path: path.to_path_buf(),
            message: message.to_string(),
        };
        let mut words = text.split_whitespace();
        let (anchor, legacy, signature) = (words.next(), words.next(), words.next());
        let head = (|| {
            let (seq, hash) = parse_anchor(anchor?).ok()?;
            let legacy_until = legacy?.strip_prefix("legacy-until=")?.parse().ok()?;
            Some(Head {
                seq,
                hash,
                legacy_until,
            })
        })()
        .ok_or_else(|| bad("not an audit head (SEQ:HASH legacy-until=N mac=...)"))?;
        if signature.and_then(|s| s.strip_prefix("mac=")) != Some(head.signature(key).as_str()) {
            return Err(bad(
                "its signature does not match the audit key: the head was changed, or the key is not the one it was written with",
            ));
        }
        Ok(Some(head))
    }
}

/// `SEQ:HASH` into its parts.
pub fn parse_anchor(text: &str) -> Result<(i64, String), String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not SEQ:HASH"))?;
    let seq = seq
        .parse::<i64>()
        .map_err(|_| format!("'{seq}' is not a record number"))?;
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("'{hash}' is not a 64-digit hex hash"));
    }
    Ok((seq, hash.to_ascii_lowercase()))
}

/// What appends need: the key, where the head goes, and where the unkeyed records end.
pub struct Chain {
    key: Vec<u8>,
    head_path: PathBuf,
    legacy_until: i64,
    /// Heads are written by a thread of their own, off the requests' path: each append
    /// hands it its record, and it writes the newest it was given (a head that lags by the
    /// records of the last moments is what a crash between an append and its head leaves
    /// anyway, and those records are checked against it on the next start).
    writer: Arc<HeadWriter>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct HeadWriter {
    pending: Mutex<PendingHead>,
    changed: Condvar,
}

#[derive(Default)]
struct PendingHead {
    next: Option<(i64, String)>,
    stop: bool,
}

impl HeadWriter {
    /// Writes every head handed over, newest first, until told to stop (having written the
    /// last one).
    fn run(&self, key: &[u8], path: &Path, legacy_until: i64) {
        // Appends hand their records over after their commits, not always in their order:
        // an older record than one written already is not written over it.
        let mut written = i64::MIN;
        loop {
            let next = {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                while p.next.is_none() && !p.stop {
                    p = self.changed.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                match p.next.take() {
                    Some(next) => next,
                    None => return,
                }
            };
            if next.0 <= written {
                continue;
            }
            written = next.0;
            let head = Head {
                seq: next.0,
                hash: next.1,
                legacy_until,
            };
            if let Err(e) = head.write(key, path) {
                tracing::error!(head = %path.display(), error = %e, "cannot write the audit head");
            }
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.writer
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop = true;
        self.writer.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Chain {
    /// The chain of the database in `state`, keyed with `key`. The head must name a record
    /// the database still holds with the same hash (the service refuses to start otherwise:
    /// appending would hide that the end was cut off); records after it (a crash between an
    /// append and its head) must verify under the key. Without a head (a database from before
    /// the chain was keyed, or a head moved aside by an operator), the records that verify
    /// unkeyed from the start are taken as written before keying, the rest must verify under
    /// the key, and the anchoring is recorded in the trail.
    pub fn open(db: &Db, key: Vec<u8>, state: &Path) -> Result<Chain, AuditSetupError> {
        let head_path = head_path(state);
        let (legacy_until, last, anchored) = match Head::read(&key, &head_path)? {
            Some(head) => {
                let last = check_tail(db, &key, &head).map_err(|e| AuditSetupError::Head {
                    path: head_path.clone(),
                    message: format!(
                        "{e}; the service does not append to a chain that fails its head (see `ward audit verify`)"
                    ),
                })?;
                (head.legacy_until, last, false)
            }
            None => {
                let all = read(db, None)?;
                let legacy = legacy_prefix(&all);
                check_chain(&all, &key, legacy, None)?;
                let last = all
                    .last()
                    .map_or((0, GENESIS.to_string()), |r| (r.seq, r.hash.clone()));
                (legacy, last, !all.is_empty())
            }
        };
        let writer = Arc::new(HeadWriter::default());
        let thread = {
            let (writer, key, path) = (writer.clone(), key.clone(), head_path.clone());
            std::thread::Builder::new()
                .name("audit-head".into())
                .spawn(move || writer.run(&key, &path, legacy_until))
                .map_err(|e| AuditSetupError::Head {
                    path: head_path.clone(),
                    message: format!("cannot start the head writer: {e}"),
                })?
        };
        let chain = Chain {
            key,
            head_path,
            legacy_until,
            writer,
            thread: Some(thread),
        };
        chain
            .write_head(last.0, &last.1)
            .map_err(|e| AuditSetupError::Head {
                path: chain.head_path.clone(),
                message: e.to_string(),
            })?;
        if anchored {
            tracing::warn!(head = %chain.head_path.display(), records = last.0, "the audit trail had no head: anchored at its last record");
            append(
                db,
                &chain,
                "-",
                "ward",
                "audit.anchored",
                &last.0.to_string(),
                &if legacy_until == 0 {
                    "no head was kept; every record is keyed".to_string()
                } else {
                    format!("no head was kept; records 1-{legacy_until} are unkeyed SHA-256 from before keying, the rest are keyed")
                },
            )?;
        }
        Ok(chain)
    }

    /// Hands the head writer the record just appended; a newer one it has not written yet
    /// is kept.
    fn advance(&self, seq: i64, hash: String) {
        let mut p = self
            .writer
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if p.next.as_ref().is_none_or(|(s, _)| *s < seq) {
            p.next = Some((seq, hash));
        }
        drop(p);
        self.writer.changed.notify_one();
    }

    fn write_head(&self, seq: i64, hash: &str) -> std::io::Result<()> {
        Head {
            seq,
            hash: hash.to_string(),
            legacy_until: self.legacy_until,
        }
        .write(&self.key, &self.head_path)
    }
}

/// Checks that the database still holds the head's record and that the records after it
/// (appended before their head was written) chain to it under the key; returns the last.
fn check_tail(db: &Db, key: &[u8], head: &Head) -> Result<(i64, String), AuditBroken> {
    let tail = read_from(db, head.seq)?;
    let rest = match tail.first() {
        _ if head.seq == 0 => &tail[..],
        Some(r) if r.seq == head.seq && r.hash == head.hash => &tail[1..],
        Some(r) if r.seq == head.seq => {
            return Err(AuditBroken::NotTheHead {
                seq: r.seq,
                expected: head.hash.clone(),
            })
        }
        Some(r) => {
            return Err(AuditBroken::Gap {
                seq: r.seq,
                before: head.seq - 1,
            })
        }
        None => {
            let last = db
                .lock()
                .query_row("SELECT COALESCE(MAX(seq), 0) FROM audit", [], |r| r.get(0))
                .map_err(DbError::from)?;
            return Err(AuditBroken::Truncated {
                last,
                head: head.seq,
            });
        }
    };
    check_records(rest, key, head.legacy_until, (head.seq, &head.hash))?;
    Ok(tail
        .last()
        .map_or((head.seq, head.hash.clone()), |r| (r.seq, r.hash.clone())))
}

/// How many records from the start verify as an unkeyed chain.
fn legacy_prefix(all: &[AuditRecord]) -> i64 {
    let mut prev = GENESIS;
    let mut n = 0;
    for r in all {
        if r.seq != n + 1 || r.prev != prev || unkeyed_digest(r) != r.hash {
            break;
        }
        prev = &r.hash;
        n = r.seq;
    }
    n
}

/// Appends one record and moves the head to it.
pub fn append(
    db: &Db,
    chain: &Chain,
    tenant: &str,
    principal: &str,
    action: &str,
    object: &str,
    detail: &str,
) -> Result<(), DbError> {
    let entry = Entry {
        tenant,
        principal,
        action,
        object,
        detail,
    };
    change_and_append(db, chain, |_| Ok(true), &entry).map(|_| ())
}

/// One record, what it says and who did it, to append in the same transaction as the
/// change it records.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    pub tenant: &'a str,
    pub principal: &'a str,
    pub action: &'a str,
    pub object: &'a str,
    pub detail: &'a str,
}

/// Runs `change` and appends `entry` in one transaction: both are kept or neither (a crash
/// between them cannot leave a change unaudited), and they cost one commit. The record is
/// appended only when `change` says it changed something (`Ok(true)`).
pub fn change_and_append(
    db: &Db,
    chain: &Chain,
    change: impl FnOnce(&rusqlite::Connection) -> Result<bool, DbError>,
    entry: &Entry<'_>,
) -> Result<bool, DbError> {
    let mut conn = db.lock();
    let tx = conn.transaction()?;
    if !change(&tx)? {
        return Ok(false);
    }
    let (seq, hash) = insert(&tx, chain, entry)?;
    tx.commit()?;
    drop(conn);
    chain.advance(seq, hash);
    Ok(true)
}

/// Inserts the next record of the chain; returns its number and hash for the head.
fn insert(
    tx: &rusqlite::Connection,
    chain: &Chain,
    entry: &Entry<'_>,
) -> Result<(i64, String), DbError> {
    let Entry {
        tenant,
        principal,
        action,
        object,
        detail,
    } = *entry;
    let (seq, prev): (i64, String) = tx
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
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
    record.hash = keyed_digest(&chain.key, &record);
    tx.prepare_cached(
        "INSERT INTO audit (seq, time, tenant, principal, action, object, detail, prev, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        record.seq,
        record.time,
        record.tenant,
        record.principal,
        record.action,
        record.object,
        record.detail,
        record.prev,
        record.hash
    ])?;
    Ok((record.seq, record.hash))
}

fn read(db: &Db, tenant: Option<&str>) -> Result<Vec<AuditRecord>, DbError> {
    query(
        db,
        "SELECT seq, time, tenant, principal, action, object, detail, prev, hash FROM audit
         WHERE ?1 IS NULL OR tenant = ?1 ORDER BY seq",
        params![tenant],
    )
}

/// Records `seq` and after.
fn read_from(db: &Db, seq: i64) -> Result<Vec<AuditRecord>, DbError> {
    query(
        db,
        "SELECT seq, time, tenant, principal, action, object, detail, prev, hash FROM audit
         WHERE seq >= ?1 ORDER BY seq",
        params![seq],
    )
}

fn query(db: &Db, sql: &str, args: impl rusqlite::Params) -> Result<Vec<AuditRecord>, DbError> {
    let conn = db.lock();
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(args, |r| {
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

/// A tenant's records after record `after`, oldest first, at most `limit` of them.
pub fn records(
    db: &Db,
    tenant: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<AuditRecord>, DbError> {
    query(
        db,
        "SELECT seq, time, tenant, principal, action, object, detail, prev, hash FROM audit
         WHERE tenant = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        params![tenant, after, limit as i64],
    )
}

/// The number of a tenant's last record; 0 when it has none.
pub fn last_record(db: &Db, tenant: &str) -> Result<i64, DbError> {
    Ok(db
        .lock()
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM audit WHERE tenant = ?1")?
        .query_row(params![tenant], |r| r.get(0))?)
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error)]
pub enum AuditBroken {
    #[error("audit record {seq} was changed: its hash does not match its content")]
    Changed { seq: i64 },
    #[error("audit record {seq} is not keyed with the audit key: the chain was recomputed without it (rewritten)")]
    Unkeyed { seq: i64 },
    #[error(
        "audit record {seq} does not follow record {before}: a record was removed or inserted"
    )]
    Gap { seq: i64, before: i64 },
    #[error("audit record {seq} does not chain to the record before it")]
    Unchained { seq: i64 },
    #[error("the audit trail ends at record {last} but its head is record {head}: records {}-{head} were removed", last + 1)]
    Truncated { last: i64, head: i64 },
    #[error("audit record {seq} is not the one the head names (hash {expected}): the chain was rewritten")]
    NotTheHead { seq: i64, expected: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Checks `all` as a chain whose records up to `legacy_until` are unkeyed and the rest keyed
/// with `key`, reaching `head` when given.
fn check_chain(
    all: &[AuditRecord],
    key: &[u8],
    legacy_until: i64,
    head: Option<(i64, &str)>,
) -> Result<(), AuditBroken> {
    let last = check_records(all, key, legacy_until, (0, GENESIS))?;
    if let Some((seq, hash)) = head {
        // Records after the head are those of an append whose head was not written yet.
        match all.iter().find(|r| r.seq == seq) {
            _ if seq == 0 => {}
            None => return Err(AuditBroken::Truncated { last, head: seq }),
            Some(r) if r.hash != hash => {
                return Err(AuditBroken::NotTheHead {
                    seq,
                    expected: hash.to_string(),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks that `records` follow record `start` (number, hash) one by one; returns the last
/// number.
fn check_records(
    records: &[AuditRecord],
    key: &[u8],
    legacy_until: i64,
    start: (i64, &str),
) -> Result<i64, AuditBroken> {
    let (mut before, mut prev) = start;
    for r in records {
        if r.seq != before + 1 {
            return Err(AuditBroken::Gap { seq: r.seq, before });
        }
        if r.prev != prev {
            return Err(AuditBroken::Unchained { seq: r.seq });
        }
        if r.seq <= legacy_until {
            if unkeyed_digest(r) != r.hash {
                return Err(AuditBroken::Changed { seq: r.seq });
            }
        } else if keyed_digest(key, r) != r.hash {
            if unkeyed_digest(r) == r.hash {
                return Err(AuditBroken::Unkeyed { seq: r.seq });
            }
            return Err(AuditBroken::Changed { seq: r.seq });
        }
        prev = &r.hash;
        before = r.seq;
    }
    Ok(before)
}

/// What `ward audit verify` found.
#[derive(Debug)]
pub struct Verified {
    pub records: usize,
    /// Records written before the chain was keyed.
    pub unkeyed: i64,
    /// The head kept beside the database, when there is one.
    pub head: Option<Head>,
}

/// Checks the whole chain: with `key`, against the head kept in `state` (which must exist
/// once the trail has records) and `anchor` (`SEQ:HASH` an operator kept); without a key
/// (a database that no keyed service has opened yet), as the unkeyed chain it is.
pub fn verify(
    db: &Db,
    state: &Path,
    key: Option<&[u8]>,
    anchor: Option<(i64, String)>,
) -> Result<Verified, AuditSetupError> {
    let head_path = head_path(state);
    // The head before the records: an append in between only adds records after it.
    let head =
        match key {
            Some(key) => Head::read(key, &head_path)?,
            None if head_path.exists() => return Err(AuditSetupError::Head {
                path: head_path,
                message:
                    "the chain is keyed: give its key (--key, or --config naming audit-key-file)"
                        .into(),
            }),
            None => None,
        };
    let all = read(db, None)?;
    if key.is_some() && head.is_none() && !all.is_empty() {
        return Err(AuditSetupError::Head {
            path: head_path,
            message: "missing: the end of the chain cannot be checked".into(),
        });
    }
    let legacy_until = head.as_ref().map_or(i64::MAX, |h| h.legacy_until);
    check_chain(
        &all,
        key.unwrap_or_default(),
        legacy_until,
        head.as_ref().map(|h| (h.seq, h.hash.as_str())),
    )?;
    if let Some((seq, hash)) = &anchor {
        check_chain(
            &all,
            key.unwrap_or_default(),
            legacy_until,
            Some((*seq, hash)),
        )?;
    }
    Ok(Verified {
        records: all.len(),
        unkeyed: legacy_until.min(all.len() as i64),
        head,
    })
}

/// The payloads that DICOM associations made for `tenant`, newest first: (time, calling AE
/// as the principal `dicom:<AE>`, the record's detail naming the called AE, payload id).
pub fn dicom_receipts(
    db: &Db,
    tenant: &str,
    limit: usize,
) -> Result<Vec<(f64, String, String, String)>, DbError> {
    let conn = db.lock();
    let mut stmt = conn.prepare_cached(
        "SELECT time, principal, detail, object FROM audit
         WHERE tenant = ?1 AND action = 'payload.created' AND principal LIKE 'dicom:%'
         ORDER BY seq DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![tenant, limit as i64], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
