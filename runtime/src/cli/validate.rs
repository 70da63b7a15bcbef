//! `ward validate PIPELINE`: the pipeline file and every component it names, checked.

use super::EXIT_BAD_INPUT;
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions};

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The pipeline file (YAML).
    pipeline: PathBuf,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<i32> {
    let pipeline = match ward::pipeline::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let engine = Engine::new(EngineOptions::default())?;
    let mut failed = false;
    for stage in &pipeline.stages {
        match engine.load_component(&stage.component.path, stage.component.digest.as_deref()) {
            Ok(c) => out!("{:<16} {}  {}", stage.name, c.digest, c.path.display()),
            Err(e) => {
                eprintln!(
                    "{}: operator '{}': {e}",
                    stage.component.location, stage.name
                );
                failed = true;
            }
        }
    }
    if failed {
        return Ok(EXIT_BAD_INPUT);
    }
    out!(
        "{}: valid ({} operators)",
        args.pipeline.display(),
        pipeline.stages.len()
    );
    Ok(0)
}
