//! `ward run PIPELINE --payload DIR`: one job, run to its end, with progress per stage.

use super::progress::StageBars;
use super::{parse_key_value, EXIT_BAD_INPUT, EXIT_FAILED};
use anyhow::Context;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use ward::engine::{Engine, EngineOptions};
use ward::jobs::{new_job_id, run_job, JobError, JobRequest, JobStatus, StageStatus};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file (YAML).
    pipeline: PathBuf,
    /// The payload: a directory of input files (e.g. DICOM). Never modified.
    #[arg(long)]
    payload: PathBuf,
    /// The job directory to create (results, logs, summary.json). Default: ward-jobs/<job id>.
    #[arg(long)]
    results: Option<PathBuf>,
    /// A named dataset for inputs that use `dataset: NAME`.
    #[arg(long = "dataset", value_name = "NAME=DIR", value_parser = parse_key_value)]
    datasets: Vec<(String, String)>,
    /// A parameter for every stage, overriding the pipeline file.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    params: Vec<(String, String)>,
    /// The tenant the job runs for.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// CPU slots for concurrent stages (default: the number of cores).
    #[arg(long)]
    cpus: Option<u32>,
    /// Do not draw progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Print the job's summary (as in its summary.json) as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The largest channel budget (the pipeline's `ports-budget`) a job may have: bytes of
    /// port messages held in this host's memory, all its channels together (e.g. 4Gi).
    #[arg(long, value_name = "SIZE", default_value = "1Gi", value_parser = ward::pipeline::quantity::parse_bytes)]
    max_ports_budget: u64,
    #[command(flatten)]
    trust: super::registry_args::TrustArgs,
}

pub fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut pipeline = match ward::pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    // Registry components are fetched and verified before anything is compiled.
    if let Err(e) = args.trust.resolve(&mut pipeline)? {
        eprintln!("error: {e}");
        return Ok(EXIT_BAD_INPUT);
    }
    let mut options = EngineOptions::default();
    options.limits.max_ports_budget = args.max_ports_budget;
    let engine = Engine::new(options).context("starting the wasm engine")?;
    let job_id = new_job_id();
    let job_dir = args
        .results
        .clone()
        .unwrap_or_else(|| PathBuf::from("ward-jobs").join(&job_id));
    let cpus = args.cpus.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    let request = JobRequest {
        pipeline,
        payload: args.payload.clone(),
        job_dir: job_dir.clone(),
        job_id: job_id.clone(),
        tenant: args.tenant.clone(),
        parameters: args.params.into_iter().collect(),
        datasets: args
            .datasets
            .into_iter()
            .map(|(k, v)| (k, PathBuf::from(v)))
            .collect::<BTreeMap<_, _>>(),
        cpu_slots: cpus,
        cancel: None,
        preempted: None,
    };
    let names: Vec<String> = request
        .pipeline
        .stages
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let show = !args.no_progress && std::io::stderr().is_terminal();
    let bars = Arc::new(StageBars::new(&names, show));
    let summary = match run_job(&engine, &request, bars.clone()) {
        Ok(s) => s,
        Err(
            e @ (JobError::Component { .. }
            | JobError::NoGpu { .. }
            | JobError::PayloadMissing { .. }
            | JobError::JobDirNotEmpty { .. }
            | JobError::PortsBudget { .. }
            | JobError::Volume(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
        Err(e) => return Err(e.into()),
    };
    drop(bars);
    let code = if summary.status == JobStatus::Succeeded {
        0
    } else {
        EXIT_FAILED
    };
    if args.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&summary).context("the job summary as JSON")?
        );
        return Ok(code);
    }

    out!(
        "job {} {}",
        summary.job_id,
        match summary.status {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "FAILED",
            JobStatus::Running => "is still running",
        }
    );
    for stage in &summary.stages {
        let time = stage
            .duration_s
            .map(|d| format!("{d:.2}s"))
            .unwrap_or_default();
        let status = match stage.status {
            StageStatus::Succeeded => "ok",
            StageStatus::Failed => "FAILED",
            StageStatus::Skipped => "skipped",
            _ => "not run",
        };
        out!("  {:<16} {:<8} {:>8}", stage.name, status, time);
        if let Some(reason) = &stage.reason {
            for line in super::printable(&reason.to_string()).lines() {
                out!("      {line}");
            }
        }
    }
    out!("results: {}", job_dir.join("results").display());
    out!("logs:    {}", job_dir.join("logs").display());
    out!("summary: {}", job_dir.join("summary.json").display());
    Ok(code)
}
