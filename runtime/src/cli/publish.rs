//! `ward publish COMPONENT.wasm REGISTRY/VENDOR/NAME:TAG --key KEY`: conformance first (a
//! failing component is refused, naming the check), then the component, its report and its
//! signature pushed; prints what a pipeline pins, `REF@sha256:…`.

use super::registry_args::{parse_reference, RegistryArgs};
use super::{EXIT_BAD_INPUT, EXIT_FAILED};
use crate::conformance::{check_component, ConformanceOptions};
use anyhow::Context as _;
use std::path::PathBuf;
use ward::engine::{Engine, EngineOptions, CONTRACT_VERSION_TEXT};
use ward::registry::artifact::ComponentTypes;
use ward::registry::publish::{publish, Publication};
use ward::registry::SigningKey;

#[derive(clap::Args)]
pub struct PublishArgs {
    /// The component (.wasm).
    component: PathBuf,
    /// Where to publish it: REGISTRY/VENDOR/NAME:TAG.
    reference: String,
    /// The private key (PEM) to sign it with (`ward key generate`).
    #[arg(long)]
    key: PathBuf,
    /// The vendor named in the artifact's annotations (default: the repository's first part).
    #[arg(long)]
    vendor: Option<String>,
    /// Publish without running `ward conformance`; recorded in the artifact, and refused by
    /// tenants that require a conformance verdict.
    #[arg(long)]
    skip_conformance: bool,
    /// The memory conformance runs the component with (its `requests.memory`).
    #[arg(long, default_value = "1Gi", value_parser = ward::pipeline::quantity::parse_bytes)]
    memory: u64,
    /// A parameter for every conformance run (as `ward conformance --param`).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = super::parse_key_value)]
    params: Vec<(String, String)>,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: PublishArgs) -> anyhow::Result<i32> {
    let reference = parse_reference(&args.reference)?;
    if reference.digest().is_some() {
        anyhow::bail!("'{}': publish to a tag (REGISTRY/VENDOR/NAME:TAG); the digest is what publishing prints", args.reference);
    }
    let key = SigningKey::from_pem_file(&args.key)?;
    let wasm = std::fs::read(&args.component)
        .with_context(|| format!("reading the component {}", args.component.display()))?;
    let engine = Engine::new(EngineOptions::default())?;
    let inspection = match engine.inspect(&args.component) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_BAD_INPUT);
        }
    };
    if let Some(why) = &inspection.stage_error {
        eprintln!(
            "error: {}: not a stage, refused: {why}",
            args.component.display()
        );
        return Ok(EXIT_BAD_INPUT);
    }
    let conformance_report = if args.skip_conformance {
        tracing::warn!("publishing without conformance: the artifact records it as skipped");
        None
    } else {
        let scratch = tempfile::Builder::new().prefix("ward-publish-").tempdir()?;
        let options = ConformanceOptions {
            memory_bytes: args.memory,
            timeout: std::time::Duration::from_secs(60),
            disk_bytes: 10 << 30,
            files: 100_000,
            parameters: args.params.iter().cloned().collect(),
            scratch: scratch.path().to_path_buf(),
        };
        let report = check_component(&engine, &args.component, &options)?;
        if !report.passed {
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            eprintln!(
                "error: {}: refused: ward conformance failed ({}); fix it, or publish with --skip-conformance",
                args.component.display(),
                failed.join("; ")
            );
            return Ok(EXIT_FAILED);
        }
        Some(serde_json::to_vec_pretty(&report)?)
    };
    let vendor = args
        .vendor
        .clone()
        .or_else(|| reference.repository().split('/').next().map(str::to_string));
    let publication = Publication {
        wasm: &wasm,
        types: ComponentTypes {
            imports: inspection.world.imports.clone(),
            exports: inspection.world.exports.clone(),
            target: Some(format!("ward:stage/stage@{CONTRACT_VERSION_TEXT}")),
        },
        vendor,
        conformance_report,
    };
    let registry = args.registry.registry()?;
    let bar = super::progress::transfer_bar("push", !args.no_progress);
    let published = publish(&registry, &reference, &publication, &key, &|sent, total| {
        bar.set_length(total);
        bar.set_position(sent);
    });
    bar.finish_and_clear();
    let published = published?;
    tracing::info!(manifest = %published.manifest_digest, signature = %published.signature_tag, "published");
    out!("{}", published.pinned());
    Ok(0)
}
