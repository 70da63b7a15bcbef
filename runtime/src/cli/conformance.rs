//! `ward conformance COMPONENT.wasm`: the verdict a vendor runs before publishing.

use super::{parse_key_value, EXIT_BAD_INPUT, EXIT_FAILED};
use crate::conformance::{check_component, ConformanceOptions};
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions};
use ward::pipeline::quantity::{parse_bytes, parse_duration};

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// The component (.wasm).
    component: PathBuf,
    /// The memory the component declares it needs (its `requests.memory`).
    #[arg(long, default_value = "1Gi")]
    memory: String,
    /// The time each run may take (its `requests.timeout`).
    #[arg(long, default_value = "60s")]
    timeout: String,
    /// The bytes it may leave in its results (its `requests.disk`).
    #[arg(long, default_value = "10Gi")]
    disk: String,
    /// The files it may leave in its results (its `requests.files`).
    #[arg(long, default_value_t = 100_000)]
    files: u64,
    /// A parameter for every run.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    params: Vec<(String, String)>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ConformanceArgs) -> anyhow::Result<i32> {
    let memory_bytes = match parse_bytes(&args.memory) {
        Ok(b) => b,
        Err(why) => {
            eprintln!("error: --memory {why}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let timeout = match parse_duration(&args.timeout) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("error: --timeout {why}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let disk_bytes = match parse_bytes(&args.disk) {
        Ok(b) if b > 0 => b,
        Ok(_) => {
            eprintln!("error: --disk must be above 0");
            return Ok(EXIT_BAD_INPUT);
        }
        Err(why) => {
            eprintln!("error: --disk {why}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if !args.component.is_file() {
        eprintln!(
            "error: {}: no such component file",
            args.component.display()
        );
        return Ok(EXIT_BAD_INPUT);
    }
    let scratch = tempfile::Builder::new()
        .prefix("ward-conformance-")
        .tempdir()?;
    let engine = Engine::new(EngineOptions::default())?;
    let options = ConformanceOptions {
        memory_bytes,
        timeout,
        disk_bytes,
        files: args.files.max(1),
        parameters: args.params.into_iter().collect(),
        scratch: scratch.path().to_path_buf(),
    };
    let report = check_component(&engine, &args.component, &options)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report.to_text().trim_end());
    }
    Ok(if report.passed { 0 } else { EXIT_FAILED })
}
