//! Registry figures for the `segment` component: publishing (push and sign), pulling and
//! verifying into an empty store, and a cold start (pull, verify, compile with an empty
//! compiled-code cache, first instantiation) — beside `skopeo copy` of the same artifact
//! into an OCI layout directory, the transfer baseline measured in the same run.

use super::stats::{summarize, Summary};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::engine::{Engine, EngineOptions};
use ward::host::StageLog;
use ward::jobs::stage_run::new_store;
use ward::registry::artifact::ComponentTypes;
use ward::registry::publish::{publish, Publication};
use ward::registry::trust::fetch_verified;
use ward::registry::{ComponentStore, Registry, SigningKey, TrustPolicy};

/// skopeo as Debian installs it.
const SKOPEO: &str = "/usr/bin/skopeo";

pub struct RegistryFigures {
    pub bytes: u64,
    pub publish: Summary,
    pub pull_verify: Summary,
    pub cold_start: Summary,
    pub skopeo_copy: Summary,
}

/// Measures `repeats` rounds against the registry at `host`; each round publishes to a
/// repository of its own, so every upload is a real one (registries skip blobs a repository
/// already holds).
pub fn registry_round_trip(
    registry: &Registry,
    host: &str,
    segment: &Path,
    repeats: usize,
    scratch: &Path,
) -> anyhow::Result<RegistryFigures> {
    let wasm = std::fs::read(segment).map_err(|e| anyhow::anyhow!("{}: {e}", segment.display()))?;
    let key = SigningKey::generate();
    let policy = TrustPolicy {
        keys: vec![key.public_key()],
        require_conformance: false,
    };
    let insecure = registry.config().insecure_hosts().iter().any(|h| h == host);
    let run = format!("{}-{}", std::process::id(), ward::jobs::new_job_id());
    let (mut publish_t, mut pull_t, mut cold_t, mut skopeo_t) = (vec![], vec![], vec![], vec![]);
    for round in 0..repeats.max(1) {
        let repository = format!("ward-bench/segment-{run}-{round}");
        let tagged: oci_client::Reference = format!("{host}/{repository}:bench").parse()?;
        let publication = Publication {
            wasm: &wasm,
            types: ComponentTypes::default(),
            vendor: Some("ward-bench".into()),
            conformance_report: None,
        };
        let started = Instant::now();
        let published = publish(registry, &tagged, &publication, &key, &|_, _| {})?;
        publish_t.push(started.elapsed());
        let pinned: oci_client::Reference = published.pinned().parse()?;

        let store = ComponentStore::open(&scratch.join(format!("store-pull-{round}")))?;
        let started = Instant::now();
        fetch_verified(registry, &store, &pinned, &policy, &|_, _| {})?;
        pull_t.push(started.elapsed());

        let store = ComponentStore::open(&scratch.join(format!("store-cold-{round}")))?;
        let engine = Engine::new(EngineOptions {
            cache_dir: Some(scratch.join(format!("cache-cold-{round}"))),
            ..EngineOptions::default()
        })?;
        let started = Instant::now();
        let verified = fetch_verified(registry, &store, &pinned, &policy, &|_, _| {})?;
        let loaded = engine.load_component(&verified.wasm, Some(&verified.layer_digest))?;
        let log = Arc::new(StageLog::create(
            &scratch.join(format!("cold-{round}.log")),
            1 << 20,
        )?);
        let invocation = super::invocation(&loaded, &[], 64 << 20, log, Arc::new(|_, _| {}));
        let mut instance_store = new_store(&engine, &invocation)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?
            .block_on(loaded.pre.instantiate_async(&mut instance_store))?;
        cold_t.push(started.elapsed());

        skopeo_t.push(skopeo_copy(
            &format!("{host}/{repository}:bench"),
            insecure,
            &scratch.join(format!("skopeo-{round}")),
        )?);
    }
    Ok(RegistryFigures {
        bytes: wasm.len() as u64,
        publish: summarize(&mut publish_t),
        pull_verify: summarize(&mut pull_t),
        cold_start: summarize(&mut cold_t),
        skopeo_copy: summarize(&mut skopeo_t),
    })
}

/// `skopeo copy docker://REF oci:DIR`: manifest, config and layer, checked against their
/// digests by skopeo, written to an OCI layout.
fn skopeo_copy(reference: &str, insecure: bool, dir: &Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new(SKOPEO)
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(format!("--src-tls-verify={}", !insecure))
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:bench", dir.display()))
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "{SKOPEO} is needed for the registry baseline (apt-get install skopeo): {e}"
            )
        })?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(elapsed)
}
