//! `ward bench`: the figures Ward's speed goals are stated in, each measured against a
//! baseline in the same run — compile time of each stage component, cached instantiation,
//! a trivial three-stage pipeline end to end, the `segment` stage in the sandbox against
//! the same `imaging` code compiled natively, port throughput between two stages against
//! a native bounded channel, DIMSE ingest against DCMTK's storescp, load on the job service, and publishing and
//! pulling a component through a registry against skopeo.

mod dicom;
mod inference;
mod pipeline;
mod ports;
mod registry;
mod render;
mod segment;
mod service;
pub mod stats;

pub use dicom::dimse_ingest;
pub use inference::inference_figures;
pub use pipeline::{compile_times, instantiate_time, trivial_pipeline_time};
pub use ports::{ports_throughput, rate};
pub use registry::registry_round_trip;
pub use render::render_figures;
pub use segment::segment_sandbox_vs_native;
pub use service::service_load;

use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use ward::engine::StageComponent;
use ward::host::bindings::context::JobInfo;
use ward::host::{ProgressFn, StageLog};
use ward::jobs::stage_run::StageInvocation;
use ward::volumes::Mount;

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

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    /// The figure it is compared with, measured in the same run, and what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<(String, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
}

impl Row {
    pub fn new(what: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            what: what.into(),
            value,
            unit,
            baseline: None,
            goal: None,
        }
    }

    pub fn baseline(mut self, what: impl Into<String>, value: f64) -> Row {
        self.baseline = Some((what.into(), value));
        self
    }

    pub fn goal(mut self, goal: impl Into<String>) -> Row {
        self.goal = Some(goal.into());
        self
    }
}

/// Prints rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(10);
    for r in rows {
        let mut line = format!("{:<width$}  {:>12.3} {:<3}", r.what, r.value, r.unit);
        if let Some((name, b)) = &r.baseline {
            line.push_str(&format!(
                "  vs {name} {b:.3} {}: ratio {:.2}",
                r.unit,
                r.value / b
            ));
        }
        if let Some(goal) = &r.goal {
            line.push_str(&format!("  (goal {goal})"));
        }
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), "{line}");
    }
}
