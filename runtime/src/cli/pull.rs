//! `ward pull REF[@DIGEST]`: a component into the local store, verified.

use super::registry_args::{parse_reference, trust_policy, RegistryArgs};
use super::EXIT_FAILED;
use std::path::PathBuf;
use ward::registry::trust::fetch_verified;

#[derive(clap::Args)]
pub struct PullArgs {
    /// REGISTRY/REPOSITORY[:TAG][@DIGEST]; a tag is resolved to its digest now, and printed.
    reference: String,
    /// A public key (PEM) whose signature is accepted; repeat for several.
    #[arg(long = "trust", value_name = "KEY", required = true)]
    trust: Vec<PathBuf>,
    /// Also require a passing conformance report bound to the component.
    #[arg(long)]
    require_conformance: bool,
    /// Do not draw a progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: PullArgs) -> anyhow::Result<i32> {
    let mut reference = parse_reference(&args.reference)?;
    let policy = trust_policy(&args.trust, args.require_conformance)?;
    let registry = args.registry.registry()?;
    let store = args.registry.store()?;
    if reference.digest().is_none() {
        let digest = registry.resolve(&reference)?;
        reference = match reference.tag() {
            Some(tag) => oci_client::Reference::with_tag_and_digest(
                reference.registry().to_string(),
                reference.repository().to_string(),
                tag.to_string(),
                digest,
            ),
            None => reference.clone_with_digest(digest),
        };
    }
    let bar = super::progress::transfer_bar("pull", !args.no_progress);
    let verified = fetch_verified(&registry, &store, &reference, &policy, &|got, total| {
        bar.set_length(total);
        bar.set_position(got);
    });
    bar.finish_and_clear();
    match verified {
        Ok(v) => {
            out!("{}@{}", v.reference, v.manifest_digest);
            out!("  component: {}", v.wasm.display());
            out!("  signed by: {} ({})", v.signer, v.signer_source);
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_FAILED)
        }
    }
}
