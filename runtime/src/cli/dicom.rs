//! `ward dicom ...`: the DICOM adapter standalone (`listen`), and a small SCU for users'
//! own testing (`echo`, `send`).

use super::{EXIT_BAD_INPUT, EXIT_FAILED};
use anyhow::Context;
use std::io::Read as _;
use std::path::{Path, PathBuf};
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
        /// The peer: AE_TITLE@host:port.
        peer: Peer,
        /// Ward's calling AE title.
        #[arg(long, default_value = "WARD")]
        calling: String,
    },
    /// C-STORE files to a peer: `ward dicom send PATHS... --to PACS@host:104`. A directory
    /// is sent whole: its files and its subdirectories' in path order, skipping (with a
    /// warning naming each) files that are not DICOM Part 10 files.
    Send {
        /// DICOM files, and directories to send every DICOM file under.
        #[arg(required = true, value_name = "PATH")]
        files: Vec<PathBuf>,
        /// The peer: AE_TITLE@host:port.
        #[arg(long)]
        to: Peer,
        /// Ward's calling AE title.
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

fn send(paths: &[PathBuf], to: &Peer, calling: String) -> anyhow::Result<i32> {
    let files = files_to_send(paths)?;
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
    let outcomes = scu::send_files(&options, to, &files, |_| bar.inc(1))?;
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

/// The files `paths` name: files as given (a file that is not DICOM fails when sent, as the
/// user named it), directories walked for their DICOM Part 10 files, each directory's in
/// path order. Files in a directory that are not DICOM are skipped with a warning naming
/// them; a symbolic link to a directory is not followed (a link may loop).
fn files_to_send(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    anyhow::ensure!(
        !files.is_empty(),
        "no DICOM file in {}",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|d| d.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the directory {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("{}", path.display()))?;
        if kind.is_dir() {
            walk(&path, files)?;
        } else if kind.is_symlink() && path.is_dir() {
            eprintln!(
                "warning: {}: a link to a directory, not followed",
                path.display()
            );
        } else if is_part10(&path) {
            files.push(path);
        } else {
            eprintln!(
                "warning: {}: not a DICOM file (no DICM prefix at byte 128), skipped",
                path.display()
            );
        }
    }
    Ok(())
}

/// Whether `path` starts as a DICOM Part 10 file: a 128-byte preamble, then `DICM`.
fn is_part10(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[128..] == b"DICM")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_directory_is_sent_as_its_dicom_files_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let dicom = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut bytes = vec![0u8; 128];
            bytes.extend(b"DICM");
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let b = dicom("b.dcm");
        let a2 = dicom("a/2");
        let a1 = dicom("a/1.dcm");
        std::fs::write(dir.path().join("a/README.txt"), "notes").unwrap();
        std::fs::write(dir.path().join("short"), "DICM").unwrap();
        let named = dir.path().join("short");
        let files = super::files_to_send(&[dir.path().to_path_buf(), named.clone()]).unwrap();
        assert_eq!(files, [a1, a2, b, named], "named files are kept as given");
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), "x").unwrap();
        let e = super::files_to_send(&[empty.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("no DICOM file"), "{e}");
    }
}
