//! The on-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 and by the engine (wasmtime version and
//! the settings that affect code), and live in a directory only this host writes. Ward
//! never loads precompiled code from anywhere else: components always arrive as `.wasm`.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmtime::component::Component;

pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache in `root/<engine-key>/`, created owner-only; `None` disables caching. A
    /// directory another user could write to (or swap out) is not used: compiled code is
    /// loaded without further checks, so the cache is only as safe as its path.
    pub fn open(root: Option<&Path>, engine: &wasmtime::Engine) -> ComponentCache {
        let Some(root) = root else {
            return ComponentCache { dir: None };
        };
        let wanted = root.join(engine_key(engine));
        // The checked path is the one used: a symlink swapped after the check is not followed.
        let dir = create_private_dir(&wanted)
            .and_then(|()| std::fs::canonicalize(&wanted))
            .map_err(|e| e.to_string())
            .and_then(|dir| check_private_path(&dir).map(|()| dir));
        match dir {
            Ok(dir) => ComponentCache { dir: Some(dir) },
            Err(why) => {
                tracing::warn!(cache = %wanted.display(), "not caching compiled components: {why}");
                ComponentCache { dir: None }
            }
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled component for `bytes` (whose digest is `digest`), from the cache when
    /// present, otherwise compiled and stored. Returns the compile time when it compiled.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
        digest: &str,
    ) -> wasmtime::Result<(Component, Option<Duration>)> {
        let entry = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", digest.trim_start_matches("sha256:"))));
        if let Some(entry) = &entry {
            if entry.is_file() {
                // SAFETY: the file was written by `Component::serialize` of an engine with
                // the same key, into a directory only this user can write; a damaged entry
                // fails deserialization and is replaced below.
                match unsafe { Component::deserialize_file(engine, entry) } {
                    Ok(component) => return Ok((component, None)),
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), error = %e, "discarding unreadable cache entry")
                    }
                }
            }
        }
        let started = Instant::now();
        let component = Component::new(engine, bytes)?;
        let compile_time = started.elapsed();
        if let Some(entry) = &entry {
            if let Err(e) = write_atomically(entry, &component.serialize()?) {
                tracing::warn!(entry = %entry.display(), error = %e, "cannot write the compile cache");
            }
        }
        Ok((component, Some(compile_time)))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Names the engine: compiled code from one engine is only valid for a compatible one.
fn engine_key(engine: &wasmtime::Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("engine-{:016x}", hasher.finish())
}

/// Every directory from `dir` up must belong to this user or root, and none but `dir`'s
/// ancestors that are sticky (like /tmp) may be writable by others.
#[cfg(unix)]
fn check_private_path(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    for (depth, path) in dir.ancestors().enumerate() {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("{} is a symbolic link", path.display()));
        }
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let owner_ok = meta.uid() == 0 || Some(meta.uid()) == me;
        let others_write = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        if !owner_ok {
            return Err(format!("{} belongs to another user", path.display()));
        }
        if others_write && (depth == 0 || !sticky) {
            return Err(format!("{} is writable by other users", path.display()));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private_path(_dir: &Path) -> Result<(), String> {
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes through a temporary file and a rename, so a reader never sees half an entry.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), unique_suffix()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}
