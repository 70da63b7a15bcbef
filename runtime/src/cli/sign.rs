//! `ward sign REF@DIGEST --key KEY` and `ward verify REF@DIGEST --key PUB`.

use super::registry_args::{parse_reference, trust_policy, RegistryArgs};
use super::EXIT_FAILED;
use std::path::PathBuf;
use ward::registry::publish::sign;
use ward::registry::trust::{fetch_verified, Conformance};
use ward::registry::SigningKey;

#[derive(clap::Args)]
pub struct SignArgs {
    /// The component manifest, by digest: REGISTRY/REPOSITORY@sha256:… (a tag may stand before '@').
    reference: String,
    /// The private key (PEM) to sign with.
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The component manifest, by digest: REGISTRY/REPOSITORY@sha256:….
    reference: String,
    /// A public key (PEM) whose signature is accepted; repeat for several.
    #[arg(long = "key", required = true)]
    keys: Vec<PathBuf>,
    /// Also require a passing conformance report bound to the component.
    #[arg(long)]
    require_conformance: bool,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run_sign(args: SignArgs) -> anyhow::Result<i32> {
    let reference = parse_reference(&args.reference)?;
    if reference.digest().is_none() {
        anyhow::bail!(
            "'{}': sign by digest (REF@sha256:…), so the signature names exactly what you checked",
            args.reference
        );
    }
    let key = SigningKey::from_pem_file(&args.key)?;
    let registry = args.registry.registry()?;
    let tag = sign(&registry, &reference, &key)?;
    out!(
        "signed {} with {} (tag {tag})",
        args.reference,
        key.public_key().fingerprint()
    );
    Ok(0)
}

pub fn run_verify(args: VerifyArgs) -> anyhow::Result<i32> {
    let reference = parse_reference(&args.reference)?;
    let policy = trust_policy(&args.keys, args.require_conformance)?;
    let registry = args.registry.registry()?;
    let store = args.registry.store()?;
    match fetch_verified(&registry, &store, &reference, &policy, &|_, _| {}) {
        Ok(v) => {
            if args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"verified": true, "component": v})
                    )?
                );
            } else {
                out!("verified {}@{}", v.reference, v.manifest_digest);
                out!("  layer:       {}", v.layer_digest);
                out!("  signed by:   {} ({})", v.signer, v.signer_source);
                out!("  vendor:      {}", v.vendor.as_deref().unwrap_or("-"));
                out!("  contract:    {}", v.contract.as_deref().unwrap_or("-"));
                out!(
                    "  conformance: {}",
                    match &v.conformance {
                        Conformance::Pass { report } => format!("pass (report {report})"),
                        Conformance::Skipped => "skipped by the publisher".to_string(),
                        Conformance::None => "none".to_string(),
                    }
                );
            }
            Ok(0)
        }
        Err(e) => {
            if args.json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"verified": false, "check": e.check(), "error": e.to_string()})
                    )?
                );
            } else {
                eprintln!("error: {e}");
            }
            Ok(EXIT_FAILED)
        }
    }
}
