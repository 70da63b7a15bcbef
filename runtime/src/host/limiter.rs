//! The store limiter: caps a stage's linear memory in aggregate across all its memories,
//! remembering what was refused so the failure can be reported precisely. Instances, tables,
//! memories and table elements per component are bounded by the pooling allocator
//! (`engine/config.rs`).

use wasmtime::ResourceLimiter;

pub struct StageLimiter {
    memory_cap: u64,
    memory_used: u64,
    memory_peak: u64,
    /// Set when a growth was refused: the bytes the stage would have held in total.
    pub memory_refused: Option<u64>,
}

impl StageLimiter {
    pub fn new(memory_cap: u64) -> StageLimiter {
        StageLimiter {
            memory_cap,
            memory_used: 0,
            memory_peak: 0,
            memory_refused: None,
        }
    }

    pub fn memory_cap(&self) -> u64 {
        self.memory_cap
    }

    /// The most linear memory the stage held at once, all memories together (with what
    /// the host held for it: see [`StageLimiter::charge`]).
    pub fn memory_peak(&self) -> u64 {
        self.memory_peak
    }

    /// Counts `bytes` the host holds for the stage (its tensors and models for inference)
    /// in the stage's memory; false, and nothing counted, when that would pass the cap.
    pub fn charge(&mut self, bytes: u64) -> bool {
        let wanted = self.memory_used.saturating_add(bytes);
        if wanted > self.memory_cap {
            return false;
        }
        self.memory_used = wanted;
        self.memory_peak = self.memory_peak.max(wanted);
        true
    }

    /// Gives back what [`StageLimiter::charge`] counted.
    pub fn release(&mut self, bytes: u64) {
        self.memory_used = self.memory_used.saturating_sub(bytes);
    }

    /// What the stage holds now, its memories and what the host holds for it.
    pub fn memory_used(&self) -> u64 {
        self.memory_used
    }
}

impl ResourceLimiter for StageLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for every memory (its creation included), so the sum is the stage's total.
        let growth = desired.saturating_sub(current) as u64;
        let wanted = self.memory_used.saturating_add(growth);
        if wanted > self.memory_cap {
            self.memory_refused = Some(wanted);
            return Ok(false);
        }
        self.memory_used = wanted;
        self.memory_peak = self.memory_peak.max(wanted);
        // A guest that recovered from a refused growth and has grown within the cap since is
        // no longer over it: a later trap has another cause.
        self.memory_refused = None;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pool's `table_elements` bounds every table.
        Ok(true)
    }
}
