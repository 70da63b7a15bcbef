//! `ward convert clara PIPELINE [-o OUT]`: a Clara Deploy pipeline definition as a Ward
//! pipeline file. What has no Ward equivalent is printed as a warning at its file:line:col;
//! a definition that cannot be converted is refused with every problem (exit 2).

use super::{parse_key_value, EXIT_BAD_INPUT};
use anyhow::Context;
use std::path::PathBuf;
use ward::pipeline::{convert_clara, ClaraOptions};

#[derive(clap::Subcommand)]
pub enum ConvertCommand {
    /// A Clara Deploy pipeline definition (api-version 0.4 or 0.5).
    Clara(ClaraArgs),
}

#[derive(clap::Args)]
pub struct ClaraArgs {
    /// The Clara pipeline definition (YAML).
    pipeline: PathBuf,
    /// Where to write the Ward pipeline file (default: standard output).
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// The component for a container image: IMAGE (or IMAGE:TAG) = the component path to
    /// write, as given (the loader resolves it against the written file's directory).
    /// Repeatable.
    #[arg(long = "component", value_name = "IMAGE=PATH", value_parser = parse_key_value)]
    components: Vec<(String, String)>,
    /// The directory written before a component named after its image (the image's last
    /// path segment, `-` as `_`, `.wasm`). Default: beside the pipeline file.
    #[arg(long = "components", value_name = "DIR")]
    components_dir: Option<String>,
}

pub fn run(command: ConvertCommand) -> anyhow::Result<i32> {
    let ConvertCommand::Clara(args) = command;
    let text = std::fs::read_to_string(&args.pipeline)
        .with_context(|| format!("cannot read {}", args.pipeline.display()))?;
    let options = ClaraOptions {
        components: args.components,
        components_dir: args.components_dir,
    };
    let converted = match convert_clara(&args.pipeline, &text, &options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    for warning in &converted.warnings {
        eprintln!("warning: {warning}");
    }
    match &args.out {
        Some(out) => {
            std::fs::write(out, &converted.yaml)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "{}: written from {} ({} warnings)",
                out.display(),
                args.pipeline.display(),
                converted.warnings.len()
            );
        }
        None => print!("{}", converted.yaml),
    }
    Ok(0)
}
