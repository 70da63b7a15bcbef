//! `ward inspect COMPONENT`: what a component imports and exports, and whether it is a stage.

use super::EXIT_BAD_INPUT;
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The component (.wasm).
    component: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> anyhow::Result<i32> {
    let engine = Engine::new(EngineOptions::default())?;
    let inspection = engine.inspect(&args.component)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        out!("component: {}", args.component.display());
        out!("digest:    {}", inspection.digest);
        out!("size:      {} bytes", inspection.size);
        out!("imports:");
        for i in &inspection.world.imports {
            out!("  {i}");
        }
        out!("exports:");
        for e in &inspection.world.exports {
            out!("  {e}");
        }
        match &inspection.stage_error {
            None => out!("stage:     yes (targets ward:stage/stage)"),
            Some(why) => out!("stage:     no: {why}"),
        }
    }
    Ok(if inspection.stage_error.is_none() {
        0
    } else {
        EXIT_BAD_INPUT
    })
}
