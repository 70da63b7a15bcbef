//! `ward bench`: the figures Ward's speed goals are stated in, each measured against a
//! baseline in the same run — compile time of each stage component, cached instantiation,
//! a trivial three-stage pipeline end to end, the `segment` stage in the sandbox against
//! the same `imaging` code compiled natively, port throughput between two stages against
//! a native bounded channel, DIMSE ingest against DCMTK's storescp, load on the job service, and publishing and
//! pulling a component through a registry against skopeo.

mod dicom;
mod inference;
pub mod instructions;
mod pipeline;
mod ports;
mod registry;
mod render;
pub mod report;
pub mod segment;
mod service;
pub mod stats;

pub use dicom::dimse_ingest;
pub use inference::inference_figures;
pub use instructions::instruction_figures;
pub use pipeline::{compile_times, instantiate_time, trivial_pipeline_time};
pub use ports::{ports_throughput, rate};
pub use registry::registry_round_trip;
pub use render::render_figures;
pub use report::{Goal, Report, Row};
pub use segment::segment_sandbox_vs_native;
pub use service::{library_jobs_per_s, service_load};

use std::sync::Arc;
use std::time::Duration;
use ward::engine::StageComponent;
use ward::host::bindings::context::JobInfo;
use ward::host::{ProgressFn, StageLog};
use ward::jobs::stage_run::StageInvocation;
use ward::volumes::Mount;

/// A job of `pipeline` for measurement: tenant "bench", no parameters or datasets, never
/// cancelled.
fn bench_job(
    pipeline: &ward::pipeline::Pipeline,
    payload: &std::path::Path,
    job_dir: std::path::PathBuf,
    cpu_slots: u32,
) -> ward::jobs::JobRequest {
    ward::jobs::JobRequest {
        pipeline: pipeline.clone(),
        payload: payload.to_path_buf(),
        job_dir,
        job_id: ward::jobs::new_job_id(),
        tenant: "bench".into(),
        parameters: Default::default(),
        datasets: Default::default(),
        cpu_slots,
        cancel: None,
        preempted: None,
    }
}

/// A stage run for measurement: a "bench" job, no parameters, the default results quota and
/// a 10-minute deadline.
fn invocation<'a>(
    component: &'a StageComponent,
    mounts: &'a [Mount],
    memory_cap: u64,
    log: Arc<StageLog>,
    progress: ProgressFn,
) -> StageInvocation<'a> {
    StageInvocation {
        component,
        info: JobInfo {
            job_id: "bench".into(),
            pipeline: "bench".into(),
            stage: "bench".into(),
            tenant: "bench".into(),
            attempt: 1,
        },
        parameters: Vec::new(),
        env: Vec::new(),
        args: vec!["bench".into()],
        mounts,
        memory_cap,
        timeout: Duration::from_secs(600),
        disk_bytes: ward::pipeline::DEFAULT_DISK,
        files: ward::pipeline::DEFAULT_FILES,
        log,
        progress,
        ports: None,
        cancel: None,
        preempted: None,
        gpu_memory: 0,
        inference: None,
    }
}
