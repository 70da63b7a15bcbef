//! The host side of the `ward:stage` contract: the per-stage store state, the `context` and
//! `volumes` interfaces, the restricted WASI a stage gets, and its captured output.

pub mod bindings;
pub(crate) mod context;
mod gpu;
mod limiter;
pub mod ports;
pub mod stage_log;
mod stdio;
mod volumes;
pub mod wasi;

pub use bindings::{Stage, StagePre};
pub use limiter::StageLimiter;
pub use stage_log::StageLog;
pub use wasi::{add_to_linker, build_wasi};

use bindings::{context::JobInfo, volumes::Volume};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Called with (fraction, message) when a stage reports progress.
pub type ProgressFn = Arc<dyn Fn(f32, &str) + Send + Sync>;

/// Everything a stage's store holds: its WASI context, its identity and volumes, its log,
/// and its limits.
pub struct StageState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: StageLimiter,
    pub info: JobInfo,
    /// Sorted by name.
    pub parameters: Vec<(String, String)>,
    pub volumes: Vec<Volume>,
    pub log: Arc<StageLog>,
    pub progress: ProgressFn,
    pub ports: ports::StagePorts,
    /// The stage's GPU buffers and modules, freed with the store.
    pub gpu: gpu_host::Session,
    /// What the stage may do with `wasi:nn`.
    pub nn: crate::nn::StageInference,
}

impl WasiView for StageState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
