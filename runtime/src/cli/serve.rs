//! `ward serve --config FILE`: the job service; `ward serve --check FILE`: its configuration
//! checked without starting it; `ward audit verify` / `ward audit head`: check its audit
//! trail, print its head (on the service's own machine, from its state directory);
//! `ward audit list`: the trail through the API; `ward token hash`: the hash a token is
//! configured by.

use super::EXIT_BAD_INPUT;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use ward::engine::{Engine, EngineOptions};
use ward::service::config::{token_hash, ServeConfig};
use ward::service::{api, audit, cluster_dispatch, db::Db, http, Mode, Service};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The service's configuration (YAML): listen address, state directory, tenants.
    #[arg(long, required_unless_present = "check", conflicts_with = "check")]
    config: Option<PathBuf>,
    /// Checks this configuration (every key, the files it names, the hosted DICOM
    /// adapter's routes) and exits: 0 when the service can start with it, 2 otherwise.
    /// Binds no socket and writes nothing.
    #[arg(long, value_name = "CONFIG")]
    check: Option<PathBuf>,
    /// Runs as the control plane of Ward on Kubernetes: the same API, STOW-RS and DICOM
    /// adapter, but each job becomes a WardJob that a node runtime (`ward node`) claims and
    /// runs. The state directory must be on the volume every node mounts at the same path.
    #[arg(long, conflicts_with = "check")]
    cluster: bool,
    /// The namespace of the WardJobs (default: the pod's own namespace, or the kubeconfig
    /// context's).
    #[arg(long, env = "WARD_NAMESPACE", requires = "cluster")]
    namespace: Option<String>,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    if let Some(path) = &args.check {
        return Ok(check(path));
    }
    let path = args.config.expect("clap requires --config or --check");
    let config = match ServeConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.lines() {
                eprintln!("{line}");
            }
            return Ok(EXIT_BAD_INPUT);
        }
    };
    let engine =
        Arc::new(Engine::new(EngineOptions::default()).context("starting the wasm engine")?);
    let listen = config.listen.clone();
    let tls = match &config.tls {
        Some((certificate, key)) => {
            Some(ward::service::tls::acceptor(certificate, key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let mode = if args.cluster {
        Mode::Cluster
    } else {
        Mode::Embedded
    };
    let service = Service::open_in(config, engine, mode)?;
    if mode == Mode::Embedded {
        service.start();
    }
    if let Some(adapter) = service.dicom.clone() {
        host_dicom(service.clone(), adapter)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    runtime.block_on(async move {
        if mode == Mode::Cluster {
            let api = ward_cluster::KubeApi::infer(args.namespace.as_deref())
                .await
                .context("connecting to the Kubernetes API server (in a pod: its service account; elsewhere: KUBECONFIG)")?;
            let namespace = shown_namespace(args.namespace.as_deref());
            cluster_dispatch::start(&service, api, &namespace);
            out!("ward serve: control plane of namespace {namespace}");
        }
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?;
        let limits = service.config.http.clone();
        let router = api::router(service.clone());
        match tls {
            Some(acceptor) => {
                out!("ward serve: listening on https://{address}");
                let listener = ward::service::tls::TlsListener::new(listener, acceptor)?;
                http::serve(listener, router, limits, service).await;
            }
            None => {
                out!("ward serve: listening on http://{address}");
                http::serve(listener, router, limits, service).await;
            }
        }
        anyhow::Ok(())
    })?;
    Ok(0)
}

/// The namespace the client was made for, as the health answer and the log name it: the one
/// asked for, else the pod's own (the client infers the same), else the kubeconfig's.
fn shown_namespace(asked: Option<&str>) -> String {
    const POD_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    asked
        .map(str::to_string)
        .or_else(|| std::fs::read_to_string(POD_NAMESPACE).ok())
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| "(the kubeconfig context's)".into())
}

/// `ward serve --check`: one line per problem on stderr.
fn check(path: &Path) -> i32 {
    let checked = ward::service::config_check::check(path);
    for note in &checked.notes {
        out!("note: {note}");
    }
    if checked.problems.is_empty() {
        out!("{}: valid", path.display());
        return 0;
    }
    for line in &checked.problems {
        eprintln!("{line}");
    }
    EXIT_BAD_INPUT
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Recomputes the audit trail's chain under its key, checks that it reaches the head kept
    /// beside the database (and `--head`), and names the first record that breaks it.
    Verify {
        #[command(flatten)]
        trail: TrailArgs,
        /// A head printed earlier by `ward audit head` (SEQ:HASH) and kept elsewhere: the
        /// trail must still hold that record, unchanged.
        #[arg(long)]
        head: Option<String>,
    },
    /// Prints the audit trail's head (SEQ:HASH) for an operator to keep elsewhere.
    Head {
        #[command(flatten)]
        trail: TrailArgs,
    },
    /// Lists the caller's tenant's audit records from a running service (admin tokens).
    List {
        #[command(flatten)]
        connection: super::client::Connection,
        #[command(flatten)]
        page: super::client::audit::ListArgs,
    },
}

/// Where the audit trail and its key are.
#[derive(clap::Args)]
pub struct TrailArgs {
    /// The service's configuration: its state directory and `audit-key-file`.
    #[arg(long, conflicts_with = "state")]
    config: Option<PathBuf>,
    /// The service's state directory (holding ward.db and audit.head).
    #[arg(long, required_unless_present = "config")]
    state: Option<PathBuf>,
    /// The audit key (default: `audit.key` in the state directory, when there is one).
    #[arg(long)]
    key: Option<PathBuf>,
}

impl TrailArgs {
    /// The state directory and the key (none for a trail no keyed service has opened).
    fn resolve(&self) -> anyhow::Result<(PathBuf, Option<Vec<u8>>)> {
        let (state, configured) = match (&self.config, &self.state) {
            (Some(config), _) => {
                let c = ServeConfig::load(config)?;
                (c.state, c.audit_key_file)
            }
            (None, Some(state)) => (state.clone(), None),
            (None, None) => anyhow::bail!("give --config or --state"),
        };
        let generated = audit::generated_key_path(&state);
        let key = match self.key.clone().or(configured) {
            Some(path) => Some(audit::read_key(&path)?),
            None if generated.exists() => Some(audit::read_key(&generated)?),
            None => None,
        };
        Ok((state, key))
    }
}

pub fn audit(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Verify { trail, head } => {
            let anchor = head
                .as_deref()
                .map(audit::parse_anchor)
                .transpose()
                .map_err(|why| anyhow::anyhow!("--head: {why}"))?;
            let (state, key) = trail.resolve()?;
            let path = state.join("ward.db");
            anyhow::ensure!(path.is_file(), "{}: no state database", path.display());
            let db = Db::open(&path)?;
            match audit::verify(&db, &state, key.as_deref(), anchor) {
                Ok(v) => {
                    let how = match (&v.head, key.is_some()) {
                        (Some(h), _) => format!(
                            "keyed, head {} ({} unkeyed from before keying)",
                            h.anchor(),
                            v.unkeyed
                        ),
                        (None, true) => "keyed, empty".into(),
                        (None, false) => {
                            "unkeyed (no keyed service has opened it yet): a rewrite of the whole chain would not be found".into()
                        }
                    };
                    out!("audit trail intact: {} records, {how}", v.records);
                    Ok(0)
                }
                Err(
                    e @ (audit::AuditSetupError::Broken(_) | audit::AuditSetupError::Head { .. }),
                ) => {
                    out!("audit trail broken: {e}");
                    Ok(super::EXIT_FAILED)
                }
                Err(e) => Err(e.into()),
            }
        }
        AuditCommand::List { connection, page } => super::client::audit::list(&connection, page),
        AuditCommand::Head { trail } => {
            let (state, key) = trail.resolve()?;
            let key = key.context("the audit trail has no key, so no head")?;
            let path = audit::head_path(&state);
            let head = audit::Head::read(&key, &path)?
                .with_context(|| format!("{}: no audit head", path.display()))?;
            out!("{}", head.anchor());
            Ok(0)
        }
    }
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Prints the SHA-256 a token is configured by (`sha256:` of a tenant's token). The
    /// token is read from standard input (its first line), so it stays out of the shell's
    /// history and the process list.
    Hash,
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<i32> {
    match cmd {
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the token from standard input")?;
            let token = line.trim_end_matches(['\r', '\n']);
            if token.is_empty() {
                anyhow::bail!("no token on standard input: `printf %s TOKEN | ward token hash`");
            }
            out!("{}", token_hash(token));
            Ok(0)
        }
    }
}

/// Starts the DICOM adapter's SCP, handing its payloads to the service.
fn host_dicom(
    service: Arc<Service>,
    adapter: ward::dicom::config::AdapterConfig,
) -> anyhow::Result<()> {
    let storage = ward::dicom::store::Storage::open(&adapter.storage)
        .with_context(|| format!("opening the DICOM storage at {}", adapter.storage.display()))?;
    let listener = std::net::TcpListener::bind(&adapter.listen)
        .with_context(|| format!("DICOM: listening on {}", adapter.listen))?;
    out!("ward serve: DICOM on {}", listener.local_addr()?);
    let intake = Arc::new(ward::service::dicom::ServiceIntake::new(service));
    let scp = Arc::new(ward::dicom::scp::Scp::new(adapter, storage, intake));
    std::thread::Builder::new()
        .name("dicom".into())
        .spawn(move || {
            scp.serve(
                listener,
                Arc::new(std::sync::atomic::AtomicBool::new(false)),
            )
        })?;
    Ok(())
}
