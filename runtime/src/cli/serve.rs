//! `ward serve --config FILE`: the job service; `ward audit verify`: check its audit trail;
//! `ward token hash`: the hash a token is configured by.

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use ward::engine::{Engine, EngineOptions};
use ward::service::config::{token_hash, ServeConfig};
use ward::service::{api, audit, db::Db, Service};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// The service's configuration (YAML): listen address, state directory, tenants.
    #[arg(long)]
    config: PathBuf,
}

pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let config = ServeConfig::load(&args.config)?;
    let engine =
        Arc::new(Engine::new(EngineOptions::default()).context("starting the wasm engine")?);
    let listen = config.listen.clone();
    let tls = match &config.tls {
        Some((certificate, key)) => {
            Some(ward::service::tls::acceptor(certificate, key).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let service = Service::open(config, engine)?;
    service.start();
    if let Some(adapter) = service.dicom.clone() {
        host_dicom(service.clone(), adapter)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?;
        match tls {
            Some(acceptor) => {
                out!("ward serve: listening on https://{address}");
                let listener = ward::service::tls::TlsListener::new(listener, acceptor)?;
                axum::serve(listener, api::router(service))
                    .await
                    .context("serving HTTPS")
            }
            None => {
                out!("ward serve: listening on http://{address}");
                axum::serve(listener, api::router(service))
                    .await
                    .context("serving HTTP")
            }
        }
    })?;
    Ok(0)
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Recomputes the audit trail's hash chain and names the first record that breaks it.
    Verify {
        /// The service's state directory (holding ward.db).
        #[arg(long)]
        state: PathBuf,
    },
}

pub fn audit(cmd: AuditCommand) -> anyhow::Result<i32> {
    match cmd {
        AuditCommand::Verify { state } => {
            let path = state.join("ward.db");
            anyhow::ensure!(path.is_file(), "{}: no state database", path.display());
            let db = Db::open(&path)?;
            match audit::verify(&db) {
                Ok(n) => {
                    out!("audit trail intact: {n} records");
                    Ok(0)
                }
                Err(e) => {
                    out!("audit trail broken: {e}");
                    Ok(super::EXIT_FAILED)
                }
            }
        }
    }
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Prints the SHA-256 a token is configured by (`sha256:` of a tenant's token).
    Hash { token: String },
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<i32> {
    match cmd {
        TokenCommand::Hash { token } => {
            out!("{}", token_hash(&token));
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
