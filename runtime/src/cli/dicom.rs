//! `ward dicom ...`: the DICOM adapter standalone (`listen`), and a small SCU for users'
//! own testing (`echo`, `send`).

use super::{EXIT_BAD_INPUT, EXIT_FAILED};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use ward::dicom::config::{AdapterConfig, ConfigError};
use ward::dicom::peer::Peer;
use ward::dicom::pipelines::RoutePipelines;
use ward::dicom::route::Dispatcher;
use ward::dicom::scp::Scp;
use ward::dicom::scu::{self, ScuOptions};
use ward::dicom::store::Storage;
use ward::engine::{Engine, EngineOptions};

#[derive(clap::Subcommand)]
pub enum DicomCommand {
    /// Receive DICOM (C-ECHO, C-STORE) and run the routed pipelines on each payload.
    Listen {
        /// The adapter's configuration (YAML): listen address, AE routes, destinations.
        #[arg(long, required_unless_present = "check", conflicts_with = "check")]
        config: Option<PathBuf>,
        /// Only check this configuration (and load the routes' pipelines, and check the
        /// exports against them), then exit: 0 when valid, 2 with its errors.
        #[arg(long, value_name = "CONFIG")]
        check: Option<PathBuf>,
    },
    /// C-ECHO a peer: `ward dicom echo PACS@host:104`.
    Echo {
        peer: Peer,
        /// Ward's calling AE title.
        #[arg(long, default_value = "WARD")]
        calling: String,
    },
    /// C-STORE files to a peer: `ward dicom send FILES... --to PACS@host:104`.
    Send {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        to: Peer,
        #[arg(long, default_value = "WARD")]
        calling: String,
    },
}

pub fn run(cmd: DicomCommand) -> anyhow::Result<i32> {
    match cmd {
        DicomCommand::Listen {
            check: Some(config),
            ..
        } => check(&config),
        DicomCommand::Listen {
            config: Some(config),
            ..
        } => listen(&config),
        DicomCommand::Listen { .. } => anyhow::bail!("--config or --check is needed"),
        DicomCommand::Echo { peer, calling } => {
            let options = ScuOptions {
                calling_ae: calling,
                ..ScuOptions::default()
            };
            let took = scu::echo(&options, &peer)?;
            out!(
                "C-ECHO {peer}: success in {:.1} ms",
                took.as_secs_f64() * 1e3
            );
            Ok(0)
        }
        DicomCommand::Send { files, to, calling } => send(&files, &to, calling),
    }
}

/// The configuration and the routes' pipelines, checked; on a problem each is printed on a
/// line of its own (FILE:LINE:COL: message).
fn load_checked(
    config_path: &std::path::Path,
) -> Result<(AdapterConfig, RoutePipelines), ConfigError> {
    let config = AdapterConfig::load(config_path)?;
    let pipelines = RoutePipelines::load(&config)?;
    Ok((config, pipelines))
}

fn print_problems(e: &ConfigError) -> i32 {
    for line in e.lines() {
        eprintln!("{line}");
    }
    EXIT_BAD_INPUT
}

fn check(config_path: &std::path::Path) -> anyhow::Result<i32> {
    match load_checked(config_path) {
        Ok((config, pipelines)) => {
            let exports: usize = config.routes.iter().map(|r| r.exports.len()).sum();
            out!(
                "{}: valid: {} routes, {} pipelines, {} exports",
                config_path.display(),
                config.routes.len(),
                pipelines.count(),
                exports
            );
            Ok(0)
        }
        Err(e) => Ok(print_problems(&e)),
    }
}

fn listen(config_path: &std::path::Path) -> anyhow::Result<i32> {
    let (config, pipelines) = match load_checked(config_path) {
        Ok(checked) => checked,
        Err(e) => return Ok(print_problems(&e)),
    };
    let storage = Storage::open(&config.storage)
        .with_context(|| format!("opening the storage at {}", config.storage.display()))?;
    let engine =
        Arc::new(Engine::new(EngineOptions::default()).context("starting the wasm engine")?);
    let listener = std::net::TcpListener::bind(&config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let routes: Vec<&str> = config.routes.iter().map(|r| r.ae_title.as_str()).collect();
    let dispatcher = Dispatcher::start(engine, storage.clone(), config.clone(), pipelines)
        .with_context(|| format!("opening the job queue in {}", config.storage.display()))?;
    dispatcher.resume_exports();
    out!(
        "ward dicom: listening on {address} for {}",
        routes.join(", ")
    );
    let scp = Arc::new(Scp::new(config, storage, Arc::new(dispatcher.clone())));
    scp.serve(listener, Arc::new(AtomicBool::new(false)));
    Ok(0)
}

fn send(files: &[PathBuf], to: &Peer, calling: String) -> anyhow::Result<i32> {
    let options = ScuOptions {
        calling_ae: calling,
        ..ScuOptions::default()
    };
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let outcomes = scu::send_files(&options, to, files, |_| bar.inc(1))?;
    bar.finish_and_clear();
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.is_success()).collect();
    for f in &failed {
        out!("failed: {}: {}", f.path.display(), f.message);
    }
    out!(
        "sent {} of {} files to {to} in {:.2} s",
        outcomes.len() - failed.len(),
        files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if failed.is_empty() { 0 } else { EXIT_FAILED })
}
