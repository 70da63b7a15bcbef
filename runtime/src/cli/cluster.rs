//! `ward cluster`: what Ward on Kubernetes installs and how its claim protocol scales —
//! the CRDs, the RBAC rules, and the scale simulation against Ward's FAKE API server.

use std::path::PathBuf;
use ward_cluster::simulate::{self, SimParams};

#[derive(clap::Subcommand)]
pub enum ClusterCommand {
    /// Print the CustomResourceDefinitions (YAML documents), or write one file per CRD.
    Crds {
        /// Write `<DIR>/<plural>.<group>.yaml` per CRD instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the RBAC rules of `ward node` and of the control plane (JSON).
    Rbac,
    /// Simulate N node runtimes claiming M jobs, in virtual time, against Ward's FAKE
    /// in-process API server; prints a table of what was measured.
    Simulate {
        /// Node counts, one simulation each.
        #[arg(long, value_delimiter = ',', default_value = "3,30,300")]
        nodes: Vec<usize>,
        /// Jobs per simulation.
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// Tenants submitting them (in unequal shares, halving from the first).
        #[arg(long, default_value_t = 4)]
        tenants: usize,
        /// Nodes killed two minutes (virtual) into each simulation.
        #[arg(long, default_value_t = 0)]
        kill: usize,
        /// Seed of the jobs' tenants, sizes, priorities and durations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Round trip of each node's requests to the API server, in milliseconds.
        #[arg(long, default_value_t = 20)]
        round_trip_ms: u64,
        /// Delay from a change to its watch event reaching a node, in milliseconds.
        #[arg(long, default_value_t = 100)]
        watch_delay_ms: u64,
    },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<i32> {
    match command {
        ClusterCommand::Crds { out: None } => {
            let docs: Vec<String> = ward_cluster::crds::all()
                .iter()
                .map(ward_cluster::crds::to_yaml)
                .collect();
            out!("{}", docs.join("---\n").trim_end());
        }
        ClusterCommand::Crds { out: Some(dir) } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
            for crd in ward_cluster::crds::all() {
                let path = dir.join(ward_cluster::crds::file_name(&crd));
                std::fs::write(&path, ward_cluster::crds::to_yaml(&crd))
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                out!("{}", path.display());
            }
        }
        ClusterCommand::Rbac => {
            let rules = serde_json::json!({
                "node": ward_cluster::rbac::NODE_RULES,
                "controlPlane": ward_cluster::rbac::CONTROL_PLANE_RULES,
            });
            out!("{}", serde_json::to_string_pretty(&rules)?);
        }
        ClusterCommand::Simulate {
            nodes,
            jobs,
            tenants,
            kill,
            seed,
            round_trip_ms,
            watch_delay_ms,
        } => {
            let latency = simulate::latency::Latency {
                round_trip: std::time::Duration::from_millis(round_trip_ms),
                watch_delay: std::time::Duration::from_millis(watch_delay_ms),
            };
            let mut reports = Vec::new();
            for n in nodes {
                tracing::info!(nodes = n, jobs, "simulating");
                reports.push(simulate::run(&SimParams {
                    nodes: n,
                    jobs,
                    tenants,
                    kill,
                    seed,
                    latency,
                }));
            }
            out!(
                "Scale simulation of Ward's node runtimes against Ward's FAKE in-process API \
                 server (virtual time; each request takes the round trip, each watch event \
                 arrives after the watch delay; the API server's own load is not \
                 modelled):\n"
            );
            out!("{}", simulate::table(&reports).trim_end());
        }
    }
    Ok(0)
}
