//! The node's CUDA C compiler: NVRTC in a child process per compile, a bounded number of
//! compiles at once, and a bounded cache of what they produced.

use super::cache::{Key, PtxCache};
use super::child::{compile_in_child, ChildProgram, CompileLimits};
use crate::GpuError;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[derive(Clone)]
pub struct Compiler {
    inner: Arc<Inner>,
}

struct Inner {
    program: ChildProgram,
    limits: CompileLimits,
    cache: Mutex<PtxCache>,
    /// Compiles running now.
    running: Mutex<usize>,
    slot_freed: Condvar,
}

impl Compiler {
    pub fn new(program: ChildProgram, limits: CompileLimits) -> Compiler {
        Compiler {
            inner: Arc::new(Inner {
                cache: Mutex::new(PtxCache::new(limits.cache_entries, limits.cache_bytes)),
                program,
                limits,
                running: Mutex::new(0),
                slot_freed: Condvar::new(),
            }),
        }
    }

    /// The compiler `ward` uses: its own `__nvrtc` subcommand, with the default limits.
    pub fn of_this_executable() -> Option<Compiler> {
        match ChildProgram::this_executable() {
            Ok(program) => Some(Compiler::new(program, CompileLimits::default())),
            Err(e) => {
                tracing::warn!(error = %e, "cannot find this executable to compile CUDA C with");
                None
            }
        }
    }

    pub fn limits(&self) -> &CompileLimits {
        &self.inner.limits
    }

    /// Entries and bytes in the cache.
    pub fn cached(&self) -> (usize, u64) {
        let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        (cache.len(), cache.bytes())
    }

    /// PTX for CUDA C `source` and `arch`: from the cache, or compiled in a child under the
    /// limits, stopping at the stage's `deadline`.
    pub fn compile(
        &self,
        source: &str,
        arch: Option<&'static str>,
        deadline: Option<Instant>,
    ) -> Result<String, GpuError> {
        let key: Key = (hex::encode(Sha256::digest(source.as_bytes())), arch);
        if let Some(ptx) = self.lock_cache().get(&key) {
            return Ok(ptx);
        }
        let _slot = self.slot(deadline)?;
        let ptx = compile_in_child(
            &self.inner.program,
            source,
            arch,
            &self.inner.limits,
            deadline,
        )?;
        self.lock_cache().insert(key, ptx.clone());
        Ok(ptx)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, PtxCache> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for one of the compile slots, until `deadline`.
    fn slot(&self, deadline: Option<Instant>) -> Result<Slot<'_>, GpuError> {
        let inner = &*self.inner;
        let mut running = inner.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= inner.limits.concurrent.max(1) {
            running = match deadline {
                None => inner
                    .slot_freed
                    .wait(running)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(GpuError::Deadline);
                    }
                    inner
                        .slot_freed
                        .wait_timeout(running, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        *running += 1;
        Ok(Slot(inner))
    }
}

/// A compile slot, given back when dropped.
struct Slot<'a>(&'a Inner);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.slot_freed.notify_one();
    }
}
