//! `ward validate PIPELINE`: the pipeline file and every component it names, checked.

use super::EXIT_BAD_INPUT;
use serde_json::{json, Value};
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file (YAML).
    pipeline: PathBuf,
    /// Print the verdict as JSON: `valid`, the `operators` with their component's digest
    /// (or `error`), and the pipeline file's own `error`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    trust: super::registry_args::TrustArgs,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let file = args.pipeline.display().to_string();
    let mut pipeline = match ward::pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            if args.json {
                verdict(
                    json!({"pipeline": file, "valid": false, "error": e.to_string(), "operators": []}),
                );
            } else {
                eprintln!("{e}");
            }
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if let Err(e) = args.trust.resolve(&mut pipeline)? {
        if args.json {
            verdict(
                json!({"pipeline": file, "valid": false, "error": e.to_string(), "operators": []}),
            );
        } else {
            eprintln!("{e}");
        }
        return Ok(EXIT_BAD_INPUT);
    }
    let engine = Engine::new(EngineOptions::default())?;
    let mut operators = Vec::new();
    for stage in &pipeline.stages {
        let loaded = engine
            .load_component(&stage.component.path, stage.component.digest.as_deref())
            .map_err(|e| {
                format!(
                    "{}: operator '{}': {e}",
                    stage.component.location, stage.name
                )
            })
            .and_then(|c| match ward::jobs::inference_refusal(stage, &c) {
                Some(refused) => Err(refused.to_string()),
                None => Ok(c),
            });
        match loaded {
            Ok(c) => {
                if !args.json {
                    out!("{:<16} {}  {}", stage.name, c.digest, c.path.display());
                }
                operators
                    .push(json!({"name": stage.name, "digest": c.digest, "component": c.path}));
            }
            Err(error) => {
                if !args.json {
                    eprintln!("{error}");
                }
                operators.push(
                    json!({"name": stage.name, "component": stage.component.path, "error": error}),
                );
            }
        }
    }
    let valid = operators.iter().all(|o| o.get("error").is_none());
    if args.json {
        verdict(json!({"pipeline": file, "valid": valid, "operators": operators}));
    } else if valid {
        out!("{file}: valid ({} operators)", pipeline.stages.len());
    }
    Ok(if valid { 0 } else { EXIT_BAD_INPUT })
}

fn verdict(v: Value) {
    out!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}
