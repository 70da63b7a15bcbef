//! The on-disk cache of compiled components.
//!
//! Entries are keyed by the component's sha256 and by the engine (wasmtime version and
//! the settings that affect code), and live in a directory only this host writes. Ward
//! never loads precompiled code from anywhere else: components always arrive as `.wasm`,
//! and what is compiled from them is written by this host or by the compiler child it runs
//! (`compile_child`). The directory has a size bound: the least recently used entries go
//! first.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use wasmtime::component::Component;

use super::compile_child::{compile_in_child, ChildCompileError, Compiler};

/// Why a component could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileFailure {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Child(ChildCompileError),
}

pub struct ComponentCache {
    dir: Option<PathBuf>,
    /// Bytes the entries may take together; past it the least recently used are removed.
    max_bytes: u64,
}

impl ComponentCache {
    /// A cache in `root/<engine-key>/`, created owner-only; `None` disables caching. A
    /// directory another user could write to (or swap out) is not used: compiled code is
    /// loaded without further checks, so the cache is only as safe as its path.
    pub fn open(root: Option<&Path>, engine: &wasmtime::Engine, max_bytes: u64) -> ComponentCache {
        let Some(root) = root else {
            return ComponentCache {
                dir: None,
                max_bytes,
            };
        };
        let wanted = root.join(engine_key(engine));
        // The checked path is the one used: a symlink swapped after the check is not followed.
        let dir = create_private_dir(&wanted)
            .and_then(|()| std::fs::canonicalize(&wanted))
            .map_err(|e| e.to_string())
            .and_then(|dir| check_private_path(&dir).map(|()| dir));
        match dir {
            Ok(dir) => ComponentCache {
                dir: Some(dir),
                max_bytes,
            },
            Err(why) => {
                tracing::warn!(cache = %wanted.display(), "not caching compiled components: {why}");
                ComponentCache {
                    dir: None,
                    max_bytes,
                }
            }
        }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled component for `bytes` (whose digest is `digest`), from the cache when
    /// present, otherwise compiled by `compiler` and stored. Returns the compile time when
    /// it compiled.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        compiler: &Compiler,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, Option<Duration>), CompileFailure> {
        let entry = self
            .dir
            .as_ref()
            .map(|d| d.join(format!("{}.cwasm", digest.trim_start_matches("sha256:"))));
        if let Some(entry) = &entry {
            if entry.is_file() {
                // SAFETY: the file was written by `Component::serialize` of an engine with
                // the same key (here or in the compiler child), into a directory only this
                // user can write; a damaged entry fails deserialization and is replaced.
                match unsafe { Component::deserialize_file(engine, entry) } {
                    Ok(component) => {
                        mark_used(entry);
                        return Ok((component, None));
                    }
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), error = %e, "discarding unreadable cache entry")
                    }
                }
            }
        }
        let started = Instant::now();
        let component = match compiler {
            Compiler::Child { program, limits } => {
                // Without a cache the artefact goes through a private temporary directory.
                let scratch = match &self.dir {
                    Some(_) => None,
                    None => Some(
                        tempfile::Builder::new()
                            .prefix("ward-compile-")
                            .tempdir()
                            .map_err(|e| {
                                CompileFailure::Invalid(format!(
                                    "cannot make a directory to compile in: {e}"
                                ))
                            })?,
                    ),
                };
                let dir = self
                    .dir
                    .as_deref()
                    .or(scratch.as_ref().map(|s| s.path()))
                    .expect("a cache or a scratch directory");
                let temp = dir.join(format!(
                    ".{}.{}.compiling",
                    std::process::id(),
                    unique_suffix()
                ));
                compile_in_child(program, limits, bytes, &temp).map_err(|e| match e {
                    ChildCompileError::Invalid(why) => CompileFailure::Invalid(why),
                    other => CompileFailure::Child(other),
                })?;
                // SAFETY: written by the compiler child (this host's own binary, with this
                // engine's configuration) into a directory only this user can write.
                let loaded = unsafe { Component::deserialize_file(engine, &temp) };
                let kept = match (&entry, &loaded) {
                    (Some(entry), Ok(_)) => std::fs::rename(&temp, entry).is_ok(),
                    _ => false,
                };
                if !kept {
                    let _ = std::fs::remove_file(&temp);
                }
                loaded.map_err(|e| {
                    CompileFailure::Invalid(format!(
                        "the compiler child's artefact could not be loaded: {e:#}"
                    ))
                })?
            }
        };
        let compile_time = started.elapsed();
        if let Some(entry) = &entry {
            if let Err(e) = evict_least_recently_used(
                entry.parent().expect("in the cache"),
                self.max_bytes,
                entry,
            ) {
                tracing::warn!(cache = %entry.display(), error = %e, "cannot trim the compile cache");
            }
        }
        Ok((component, Some(compile_time)))
    }
}

/// Records a use of a cache entry in its modification time, which eviction reads (access
/// times are unreliable under `relatime` and `noatime`).
fn mark_used(entry: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(entry) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Removes the least recently used entries of `dir` until they take at most `max_bytes`
/// together; `keep` (the entry just written) is never removed.
pub(crate) fn evict_least_recently_used(
    dir: &Path,
    max_bytes: u64,
    keep: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        if path.extension().is_none_or(|e| e != "cwasm") {
            continue;
        }
        let meta = item.metadata()?;
        entries.push((meta.modified()?, meta.len(), path));
    }
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    let mut removed = Vec::new();
    for (_, len, path) in entries {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                total -= len;
                tracing::info!(entry = %path.display(), bytes = len, "compile cache entry evicted");
                removed.push(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total -= len,
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
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

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dir: &Path, name: &str, len: usize, age_s: u64) -> PathBuf {
        let path = dir.join(format!("{name}.cwasm"));
        std::fs::write(&path, vec![0u8; len]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age_s))
            .unwrap();
        path
    }

    #[test]
    fn the_least_recently_used_entries_go_first_until_the_cache_fits() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = entry(dir.path(), "a", 400, 300);
        let middle = entry(dir.path(), "b", 400, 200);
        let newest = entry(dir.path(), "c", 400, 100);
        std::fs::write(dir.path().join("other.txt"), vec![0u8; 4000]).unwrap();
        let removed = evict_least_recently_used(dir.path(), 900, &newest).unwrap();
        assert_eq!(removed, vec![oldest.clone()]);
        assert!(!oldest.exists() && middle.exists() && newest.exists());
        assert!(
            dir.path().join("other.txt").exists(),
            "only entries are counted"
        );
    }

    #[test]
    fn a_use_makes_an_entry_recent_and_the_new_entry_is_kept_even_when_alone_too_big() {
        let dir = tempfile::tempdir().unwrap();
        let used = entry(dir.path(), "a", 400, 300);
        let unused = entry(dir.path(), "b", 400, 200);
        mark_used(&used);
        let big = entry(dir.path(), "c", 5000, 0);
        let removed = evict_least_recently_used(dir.path(), 1000, &big).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(big.exists(), "the entry just written stays");
        let _ = (used, unused);
        let dir = tempfile::tempdir().unwrap();
        let used = entry(dir.path(), "a", 400, 300);
        let unused = entry(dir.path(), "b", 400, 200);
        mark_used(&used);
        let new = entry(dir.path(), "c", 400, 0);
        evict_least_recently_used(dir.path(), 800, &new).unwrap();
        assert!(
            used.exists() && !unused.exists(),
            "the used entry is now more recent"
        );
    }
}
