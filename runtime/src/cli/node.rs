//! `ward node`: the node runtime of Ward on Kubernetes (the chart's DaemonSet runs one per
//! node). It holds the Lease `ward-node-<name>` with its capacity, claims the pending
//! WardJobs that fit, runs them with Ward's job runner on the shared volume, and reports
//! through their status. SIGTERM (or Ctrl-C) stops it claiming; its running jobs then have
//! `--grace-seconds` to end before they are released to other nodes.

use super::registry_args::{trust_policy, RegistryArgs};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use ward::cluster::{RegistryAccess, RunnerExecutor, SharedRoot};
use ward::engine::{Engine, EngineOptions};
use ward::pipeline::quantity::parse_bytes;
use ward_cluster::lease::Capacity;
use ward_cluster::node::{NodeConfig, NodeRuntime, NodeStats};

#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's name: its Lease is `ward-node-<NAME>` (in a pod: `spec.nodeName`).
    #[arg(long, env = "WARD_NODE_NAME")]
    name: String,
    /// The namespace of Ward's resources (default: the pod's own namespace, or the
    /// kubeconfig context's).
    #[arg(long, env = "WARD_NAMESPACE")]
    namespace: Option<String>,
    /// The shared volume (ReadWriteMany, mounted at the same path on every node): every
    /// path a WardJob names must lie under it.
    #[arg(long, value_name = "DIR")]
    shared: PathBuf,
    /// Memory this node's jobs may hold together (e.g. 24Gi).
    #[arg(long, value_parser = parse_bytes)]
    memory: u64,
    /// Stage slots (CPUs) this node's jobs may hold together.
    #[arg(long, default_value_t = 2)]
    slots: u32,
    /// GPU memory this node's jobs may hold together (0: no GPU).
    #[arg(long, value_parser = parse_bytes, default_value = "0")]
    gpu_memory: u64,
    /// Serves `GET /healthz` here (plain HTTP): 200 once the node holds its Lease and
    /// claims jobs, 503 before and while it stops.
    #[arg(long, value_name = "ADDR")]
    health_listen: Option<SocketAddr>,
    /// How long the node's Lease lasts unrenewed: after that other nodes take its jobs.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// How often the node renews its Lease.
    #[arg(long, default_value_t = 5)]
    renew_seconds: u64,
    /// How long running jobs may go on after SIGTERM before they are released (keep it
    /// below the pod's terminationGracePeriodSeconds).
    #[arg(long, default_value_t = 25)]
    grace_seconds: u64,
    /// A vendor's public key (PEM): jobs whose pipelines pin registry components signed
    /// by it may run here. Repeat for several; without one, such jobs fail on this node.
    #[arg(long, value_name = "KEY")]
    trust: Vec<PathBuf>,
    /// Registry components must carry a conformance attestation.
    #[arg(long)]
    require_conformance: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: NodeArgs) -> anyhow::Result<i32> {
    if args.renew_seconds == 0 || args.renew_seconds >= args.lease_seconds {
        anyhow::bail!(
            "--renew-seconds {} must be above 0 and below --lease-seconds {}",
            args.renew_seconds,
            args.lease_seconds
        );
    }
    let shared = SharedRoot::new(&args.shared)
        .with_context(|| format!("--shared {}", args.shared.display()))?;
    let registry = if args.trust.is_empty() {
        None
    } else {
        Some(Arc::new(RegistryAccess {
            registry: args.registry.registry()?,
            store: args.registry.store()?,
            policy: trust_policy(&args.trust, args.require_conformance)?,
        }))
    };
    let engine =
        Arc::new(Engine::new(EngineOptions::default()).context("starting the wasm engine")?);
    let executor = RunnerExecutor::new(engine, shared, registry);
    let capacity = Capacity {
        memory_bytes: args.memory,
        slots: args.slots,
        gpu_memory_bytes: args.gpu_memory,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the node's runtime")?;
    runtime.block_on(async move {
        let api = ward_cluster::KubeApi::infer(args.namespace.as_deref())
            .await
            .context("connecting to the Kubernetes API server (in a pod: its service account; elsewhere: KUBECONFIG)")?;
        let mut config = NodeConfig::new(&args.name, api.namespace(), capacity);
        config.lease_duration = Duration::from_secs(args.lease_seconds);
        config.renew_every = Duration::from_secs(args.renew_seconds);
        config.grace = Duration::from_secs(args.grace_seconds);
        let node = NodeRuntime::new(api, executor, config);
        if let Some(address) = args.health_listen {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("--health-listen {address}"))?;
            out!(
                "ward node {}: health on http://{}/healthz",
                args.name,
                listener.local_addr()?
            );
            tokio::spawn(serve_health(listener, node.stats(), args.name.clone()));
        }
        out!(
            "ward node {}: claiming jobs (memory {}, {} slots, GPU memory {})",
            args.name,
            args.memory,
            args.slots,
            args.gpu_memory
        );
        node.run(shutdown_signal()).await?;
        out!("ward node {}: stopped", args.name);
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// Completes on the first SIGTERM (the kubelet stopping the pod) or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}

/// `GET /healthz`: the probes' answer.
async fn serve_health(listener: tokio::net::TcpListener, stats: Arc<NodeStats>, name: String) {
    let router = axum::Router::new().route(
        "/healthz",
        axum::routing::get(move || {
            let stats = stats.clone();
            let name = name.clone();
            async move {
                let ready = stats.ready.load(Ordering::Relaxed);
                let body = serde_json::json!({
                    "status": if ready { "ok" } else { "not ready" },
                    "mode": "node",
                    "node": name,
                    "lease_held": ready,
                    "running_jobs": stats.running.load(Ordering::Relaxed),
                    "claims": stats.claims.load(Ordering::Relaxed),
                    "claim_conflicts": stats.conflicts.load(Ordering::Relaxed),
                    "reclaims": stats.reclaims.load(Ordering::Relaxed),
                    "lost_runs": stats.lost_runs.load(Ordering::Relaxed),
                });
                let code = if ready {
                    axum::http::StatusCode::OK
                } else {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                };
                (code, axum::Json(body))
            }
        }),
    );
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the health endpoint stopped");
    }
}
