//! The store limiter: caps a stage's linear memory in aggregate across all its memories,
//! and bounds tables and instances, remembering what was refused so the failure can be
//! reported precisely.

use wasmtime::ResourceLimiter;

/// Table elements a stage may have in one table.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Core instances, tables and memories a stage's component may create.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

pub struct StageLimiter {
    memory_cap: u64,
    memory_used: u64,
    memory_peak: u64,
    /// Set when a growth was refused: (bytes asked for in total, cap).
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

    /// The most linear memory the stage held at once, all memories together.
    pub fn memory_peak(&self) -> u64 {
        self.memory_peak
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
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
