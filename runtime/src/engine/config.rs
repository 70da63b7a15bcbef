//! The one wasmtime configuration Ward uses: Cranelift, SIMD, epoch interruption, a bounded
//! wasm stack, backtraces for traps, and the pooling instance allocator.

use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails};

/// Limits of the engine as a whole. Per-stage limits (memory, deadline) come from the
/// pipeline's `requests` and are enforced per store.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    /// Stages that may be instantiated at once on this host.
    pub max_concurrent_stages: u32,
    /// Native stack a stage's wasm may use before a stack-overflow trap.
    pub max_wasm_stack: usize,
    /// The largest single linear memory (a 32-bit memory is at most 4 GiB).
    pub max_memory_size: usize,
    /// The largest channel budget (`ports-budget`) a job may have on this host: bytes of
    /// port messages buffered in host memory, all of a job's channels together.
    pub max_ports_budget: u64,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_concurrent_stages: 64,
            max_wasm_stack: 1 << 20,
            max_memory_size: 4 << 30,
            max_ports_budget: crate::pipeline::DEFAULT_MAX_PORTS_BUDGET,
        }
    }
}

/// What affects compiled code, without the instance allocator: the compiler child uses this
/// (it instantiates nothing, so it reserves no pool), the host adds its pool on top.
pub fn compile_config(limits: &EngineLimits) -> Config {
    let mut config = Config::new();
    config.wasm_simd(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(limits.max_wasm_stack);
    config.wasm_backtrace_details(WasmBacktraceDetails::Enable);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    config
}

pub fn wasmtime_config(limits: &EngineLimits) -> Config {
    let mut config = compile_config(limits);

    // Slots for every concurrently running stage: a Rust stage component has a handful of
    // core instances, one memory and a few tables; conformance components test several
    // memories, so allow some headroom per component.
    let stages = limits.max_concurrent_stages;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(stages);
    pool.total_core_instances(stages * 16);
    pool.max_core_instances_per_component(16);
    pool.total_memories(stages * 4);
    pool.max_memories_per_component(4);
    pool.max_memories_per_module(4);
    pool.total_tables(stages * 8);
    pool.max_tables_per_component(8);
    pool.max_memory_size(limits.max_memory_size);
    pool.table_elements(100_000);
    pool.max_component_instance_size(1 << 20);
    pool.max_core_instance_size(1 << 20);
    // Keep the first pages of a reused memory slot mapped and zero them instead of
    // decommitting: instantiation then takes no page faults for a stage's stack and data.
    pool.linear_memory_keep_resident(1 << 20);
    pool.table_keep_resident(1 << 16);
    // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), reset only the pages a stage wrote,
    // not the whole resident megabyte: a small stage's teardown is then a few pages of
    // memset instead of 1 MiB. Elsewhere the full reset above, as before.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}
