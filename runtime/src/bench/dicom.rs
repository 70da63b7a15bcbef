//! DIMSE ingest: the same CT instances sent by Ward's SCU over 1 and over 4 associations to
//! Ward's SCP and to DCMTK's storescp (both storing every instance to disk), timed from the
//! first association request to the last response.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::dicom::config::AdapterConfig;
use ward::dicom::peer::Peer;
use ward::dicom::pipelines::RoutePipelines;
use ward::dicom::route::Dispatcher;
use ward::dicom::scp::Scp;
use ward::dicom::scu::{send_files, ScuOptions};
use ward::dicom::store::Storage;
use ward::engine::Engine;
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// One receiver's time for one way of sending.
pub struct IngestRun {
    pub receiver: &'static str,
    pub associations: usize,
    pub seconds: f64,
}

pub struct Ingest {
    pub instances: usize,
    pub bytes: u64,
    pub runs: Vec<IngestRun>,
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Sends `files` to `peer` over `associations` associations at once.
fn send(peer: &Peer, files: &[PathBuf], associations: usize) -> anyhow::Result<f64> {
    let chunk = files.len().div_ceil(associations);
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let senders: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let options = ScuOptions {
                        calling_ae: "BENCH".into(),
                        ..ScuOptions::default()
                    };
                    send_files(&options, peer, part, |_| {})
                })
            })
            .collect();
        for sender in senders {
            let outcomes = sender
                .join()
                .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
            anyhow::ensure!(
                outcomes.iter().all(|o| o.is_success()),
                "not every instance was stored"
            );
        }
        Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// Ward's SCP in this process, with a route that only stores.
fn ward_scp(engine: Arc<Engine>, scratch: &Path) -> anyhow::Result<u16> {
    let port = free_port()?;
    let config_path = scratch.join("ingest.yaml");
    std::fs::write(
        &config_path,
        format!("listen: 127.0.0.1:{port}\nstorage: ward-storage\nroutes:\n  - ae-title: INGEST\n"),
    )?;
    let config = AdapterConfig::load(&config_path)?;
    let storage = Storage::open(&config.storage)?;
    let listener = TcpListener::bind(&config.listen)?;
    let pipelines = RoutePipelines::load(&config)?;
    let dispatcher = Dispatcher::start(engine, storage.clone(), config.clone(), pipelines)?;
    let scp = Arc::new(Scp::new(config, storage, Arc::new(dispatcher.clone())));
    std::thread::spawn(move || scp.serve(listener, Arc::new(AtomicBool::new(false))));
    Ok(port)
}

/// DCMTK's storescp, one process per association (`--fork`) as Ward has a thread per one.
/// Taken from `$DCMTK_BIN` (default `/usr/bin`, Debian's dcmtk), not from PATH, where other
/// packages (pynetdicom) install programs of the same name.
fn storescp(dir: &Path) -> anyhow::Result<(Killed, u16)> {
    let port = free_port()?;
    std::fs::create_dir_all(dir)?;
    let bin = std::env::var_os("DCMTK_BIN").unwrap_or_else(|| "/usr/bin".into());
    let child = Command::new(Path::new(&bin).join("storescp"))
        .args(["--fork", "+xa", "--aetitle", "INGEST", "--output-directory"])
        .arg(dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("storescp (DCMTK) is needed for this figure: {e}"))?;
    let guard = Killed(child);
    wait_for(port)?;
    Ok((guard, port))
}

/// `instances` CT slices of `size`², sent to Ward and to storescp over 1 and 4 associations.
pub fn dimse_ingest(
    engine: Arc<Engine>,
    instances: u32,
    size: u32,
    scratch: &Path,
) -> anyhow::Result<Ingest> {
    let series = scratch.join("ingest-series");
    let written = write_ct_series(
        &series,
        &CtSeriesOptions {
            slices: instances,
            size,
            seed: "ingest-bench".into(),
            ..CtSeriesOptions::default()
        },
    )?;
    let files = written.files;
    let bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let ward_port = ward_scp(engine, scratch)?;
    let ward_peer: Peer = format!("INGEST@127.0.0.1:{ward_port}").parse()?;
    let mut runs = Vec::new();
    for (round, associations) in [1usize, 4].into_iter().enumerate() {
        let (_dcmtk, port) = storescp(&scratch.join(format!("storescp-{round}")))?;
        let dcmtk_peer: Peer = format!("INGEST@127.0.0.1:{port}").parse()?;
        runs.push(IngestRun {
            receiver: "ward",
            associations,
            seconds: send(&ward_peer, &files, associations)?,
        });
        runs.push(IngestRun {
            receiver: "storescp",
            associations,
            seconds: send(&dcmtk_peer, &files, associations)?,
        });
    }
    Ok(Ingest {
        instances: files.len(),
        bytes,
        runs,
    })
}
