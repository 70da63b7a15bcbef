//! The DICOM adapter's SCP against real DCMTK peers (echoscu, storescu, storescp): routing by
//! AE title, payloads byte-identical to what was sent, pipelines triggered, results exported,
//! and bad peers refused without harm to anyone else.

use crate::real_dicom::pydicom_files;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ward::dicom::config::AdapterConfig;
use ward::dicom::pipelines::RoutePipelines;
use ward::dicom::route::Dispatcher;
use ward::dicom::scp::Scp;
use ward::dicom::store::Storage;
use ward::engine::Engine;
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

mod check;
mod events;
mod hostile;
mod process;
mod queue;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// DCMTK's storescp on a free port, storing into `dir`.
pub fn storescp(dir: &Path, ae: &str) -> (Killed, u16) {
    let port = free_port();
    (storescp_on(dir, ae, port), port)
}

/// DCMTK's storescp on `port`, once it listens.
pub fn storescp_on(dir: &Path, ae: &str, port: u16) -> Killed {
    let child = Command::new(dcmtk_tool("storescp"))
        .args(["--aetitle", ae, "--output-directory"])
        .arg(dir)
        .args(["+xa", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("storescp is needed (apt-get install -y dcmtk)");
    wait_for_port(port);
    Killed(child)
}

/// A route named CT_SEG (and RESTRICTED, only for calling AE MODALITY) running the noop
/// misbehave stage, unless `pipeline` and `export` say otherwise.
pub fn config_text(storage: &Path, port: u16, pipeline: &Path, export: &str) -> String {
    format!(
        "listen: 127.0.0.1:{port}
storage: {storage}
max-associations: 16
routes:
  - ae-title: CT_SEG
    pipelines: [{pipeline}]
{export}
  - ae-title: RESTRICTED
    pipelines: [{pipeline}]
    allow-calling: [MODALITY]
",
        storage = storage.display(),
        pipeline = pipeline.display(),
    )
}

pub fn noop_pipeline(dir: &Path) -> PathBuf {
    write_pipeline(
        dir,
        "api-version: 0.1
name: noop
operators:
  - name: noop
    component: {path: '{components}/misbehave.wasm'}
    parameters: {behaviour: noop}
    input: [{path: /payload}]
",
    )
}

/// Runs the adapter configured by `config_path` on threads of this process.
fn serve_in_process(config_path: &Path) {
    let config = AdapterConfig::load(&config_path).unwrap();
    let store = Storage::open(&config.storage).unwrap();
    let engine = Arc::new(Engine::new(crate::support::engine_options()).unwrap());
    let listener = std::net::TcpListener::bind(&config.listen).unwrap();
    let pipelines = RoutePipelines::load(&config).unwrap();
    let dispatcher = Dispatcher::start(engine, store.clone(), config.clone(), pipelines).unwrap();
    let scp = Arc::new(Scp::new(config, store, Arc::new(dispatcher)));
    std::thread::spawn(move || scp.serve(listener, Arc::new(AtomicBool::new(false))));
}

/// An adapter running in this process.
struct Adapter {
    port: u16,
    storage: PathBuf,
    _dir: tempfile::TempDir,
}

fn adapter() -> Adapter {
    adapter_with("", "")
}

/// An adapter whose CT_SEG route has `route` added, and `tail` at the end of the file.
fn adapter_with(route: &str, tail: &str) -> Adapter {
    let dir = tempdir();
    let port = free_port();
    let storage = dir.path().join("storage");
    let config_path = dir.path().join("dicom.yaml");
    let pipeline = noop_pipeline(dir.path());
    std::fs::write(
        &config_path,
        config_text(&storage, port, &pipeline, route) + tail,
    )
    .unwrap();
    serve_in_process(&config_path);
    Adapter {
        port,
        storage,
        _dir: dir,
    }
}

impl Adapter {
    fn payloads(&self) -> Vec<PathBuf> {
        let mut all: Vec<PathBuf> = std::fs::read_dir(self.storage.join("payloads"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        all.sort();
        all
    }

    fn incoming_is_empty(&self) -> bool {
        std::fs::read_dir(self.storage.join("incoming"))
            .unwrap()
            .next()
            .is_none()
    }
}

fn dcmtk(tool: &str, args: &[&str]) -> Output {
    let out = Command::new(dcmtk_tool(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} is needed (apt-get install -y dcmtk): {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends every file of `dir` to the adapter's CT_SEG route on `port` with DCMTK's storescu,
/// in one association.
pub fn store_series(port: u16, dir: &Path) {
    let out = dcmtk(
        "storescu",
        &[
            "-aec",
            "CT_SEG",
            "+sd",
            "127.0.0.1",
            &port.to_string(),
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// The data set of a DICOM file: what follows its file meta group.
pub fn data_set(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[128..132], b"DICM", "{}", file.display());
    // (0002,0000) UL: the length of the rest of the meta group.
    let group = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    bytes[144 + group..].to_vec()
}

fn sop_instance_uid(file: &Path) -> String {
    let obj = dicom_object::open_file(file).unwrap();
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn echo_is_answered_for_a_routed_ae_title() {
    let a = adapter();
    let port = a.port.to_string();
    let out = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

#[test]
fn unknown_called_and_disallowed_calling_ae_titles_are_rejected_with_their_reason() {
    let a = adapter();
    let port = a.port.to_string();
    let unknown = dcmtk("echoscu", &["-aec", "NOBODY", "127.0.0.1", &port]);
    assert_ne!(unknown.code, 0);
    let text = unknown.stdout + &unknown.stderr;
    assert!(text.contains("Called AE Title Not Recognized"), "{text}");
    let disallowed = dcmtk(
        "echoscu",
        &["-aet", "INTRUDER", "-aec", "RESTRICTED", "127.0.0.1", &port],
    );
    assert_ne!(disallowed.code, 0);
    let text = disallowed.stdout + &disallowed.stderr;
    assert!(text.contains("Calling AE Title Not Recognized"), "{text}");
    let allowed = dcmtk(
        "echoscu",
        &["-aet", "MODALITY", "-aec", "RESTRICTED", "127.0.0.1", &port],
    );
    assert_eq!(allowed.code, 0, "{}{}", allowed.stdout, allowed.stderr);
}

/// DCMTK's storescu re-encodes what it sends (lengths, padding), so its files are checked for
/// their identity and transfer syntax; Ward's own SCU sends data sets as stored, so through it
/// the files must round-trip byte for byte.
#[test]
fn real_files_in_every_transfer_syntax_are_stored_as_received() {
    let a = adapter();
    let files = pydicom_files();
    // Each file with the storescu option that proposes its own transfer syntax, so that it
    // is sent as stored rather than converted.
    let sent = [
        ("CT_small.dcm", "-xe"),
        ("MR_small.dcm", "-xe"),
        ("MR_small_implicit.dcm", "-xi"),
        ("MR_small_bigendian.dcm", "-xb"),
        ("MR_small_RLE.dcm", "-xr"),
        ("MR_small_jp2klossless.dcm", "-xv"),
        ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
        ("JPEG2000.dcm", "-xw"),
        ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),
        ("JPGExtended.dcm", "-xx"),
        ("image_dfl.dcm", "-xd"),
        ("rtplan.dcm", "-xi"),
    ];
    let port = a.port.to_string();
    // Several of these files share a SOP instance UID, so each goes in an association (and a
    // payload) of its own.
    for (name, propose) in sent {
        let original = files.join(name);
        let out = dcmtk(
            "storescu",
            &[
                "-aec",
                "CT_SEG",
                propose,
                "127.0.0.1",
                &port,
                original.to_str().unwrap(),
            ],
        );
        assert_eq!(out.code, 0, "{name}: {}{}", out.stdout, out.stderr);
        let copy = next_payload_file(&a);
        assert_eq!(
            transfer_syntax(&copy),
            transfer_syntax(&original),
            "{name}: stored in the transfer syntax it was sent in"
        );
        assert_eq!(sop_instance_uid(&copy), sop_instance_uid(&original));
        let dump = dcmdump(&[copy.to_str().unwrap()]);
        assert_eq!(dump.code, 0, "{name}: {}", dump.stderr);

        // The same file through Ward's SCU, which sends the data set as stored.
        let peer: ward::dicom::peer::Peer = format!("CT_SEG@127.0.0.1:{port}").parse().unwrap();
        let outcomes = ward::dicom::scu::send_files(
            &Default::default(),
            &peer,
            std::slice::from_ref(&original),
            |_| {},
        )
        .unwrap();
        if name == "rtplan.dcm" {
            // Its file meta names another SOP instance than its data set: the command Ward's
            // SCU sends (from the meta) does not match the data set, and Ward's SCP says so.
            assert_eq!(outcomes[0].status, Some(0xA900), "{outcomes:#?}");
            continue;
        }
        assert!(outcomes[0].is_success(), "{name}: {outcomes:#?}");
        let copy = next_payload_file(&a);
        assert!(
            data_set(&original) == data_set(&copy),
            "{name}: the stored data set differs from the one sent"
        );
    }
}

/// The one file of the payload that appears next.
fn next_payload_file(a: &Adapter) -> PathBuf {
    static SEEN: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = SEEN.lock().unwrap();
        if let Some(new) = a.payloads().into_iter().find(|p| !seen.contains(p)) {
            seen.push(new.clone());
            let files: Vec<PathBuf> = std::fs::read_dir(&new)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert_eq!(files.len(), 1, "{files:?}");
            return files[0].clone();
        }
        drop(seen);
        assert!(
            Instant::now() < deadline,
            "no new payload: {:?}",
            a.payloads()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn transfer_syntax(file: &Path) -> String {
    dicom_object::open_file(file)
        .unwrap()
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn concurrent_associations_store_every_instance_exactly_once() {
    let a = adapter();
    let port = a.port.to_string();
    let sources = tempdir();
    let series: Vec<PathBuf> = (0..8)
        .map(|i| {
            let dir = sources.path().join(format!("series-{i}"));
            write_ct_series(
                &dir,
                &CtSeriesOptions {
                    slices: 500,
                    size: 16,
                    seed: format!("concurrent-{i}"),
                    ..CtSeriesOptions::default()
                },
            )
            .unwrap();
            dir
        })
        .collect();
    let senders: Vec<_> = series
        .iter()
        .map(|dir| {
            Command::new(dcmtk_tool("storescu"))
                .args(["-aec", "CT_SEG", "+sd", "127.0.0.1", &port])
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in senders {
        let out = s.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.payloads().len() < 8 {
        assert!(Instant::now() < deadline, "payloads: {:?}", a.payloads());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stored = std::collections::HashMap::new();
    for payload in a.payloads() {
        let files: Vec<PathBuf> = std::fs::read_dir(&payload)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 500, "one association, one payload of 500");
        for f in files {
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            assert!(stored.insert(name, f).is_none(), "stored twice");
        }
    }
    for dir in &series {
        for entry in std::fs::read_dir(dir).unwrap() {
            let original = entry.unwrap().path();
            let uid = sop_instance_uid(&original);
            let copy = &stored[&format!("{uid}.dcm")];
            assert!(data_set(&original) == data_set(copy), "{uid} differs");
        }
    }
    assert!(a.incoming_is_empty());
}

/// The listener logs the abort (with what the association had stored) before it discards
/// that: once the line is there, no payload may appear.
#[test]
fn an_aborted_association_leaves_no_payload_and_the_service_goes_on() {
    let l = process::Listening::start(|storage, port| {
        format!(
            "listen: 127.0.0.1:{port}\nstorage: {}\nroutes:\n  - ae-title: CT_SEG\n",
            storage.display()
        )
    });
    let port = l.port.to_string();
    let series = tempdir();
    write_ct_series(
        series.path(),
        &CtSeriesOptions {
            slices: 5,
            size: 32,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    let out = dcmtk(
        "storescu",
        &[
            "--abort",
            "-aec",
            "CT_SEG",
            "+sd",
            "127.0.0.1",
            &port,
            series.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    l.wait_for_log(&["association aborted", "instances=5"]);
    assert!(l.payloads().is_empty(), "{:?}", l.payloads());
    assert!(process::entries(&l.storage.join("incoming")).is_empty());
    let echo = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
    assert_eq!(echo.code, 0, "still serving");
}

#[test]
fn garbage_and_a_dropped_connection_end_only_their_own_association() {
    use std::io::Write;
    let a = adapter();
    // Not a PDU at all.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    drop(s);
    // An A-ASSOCIATE-RQ header claiming more than follows, then nothing.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap();
    let _ = s.write_all(&[0x01, 0x00, 0x00, 0x00, 0x10, 0x00]);
    drop(s);
    let port = a.port.to_string();
    let echo = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
    assert_eq!(echo.code, 0, "{}{}", echo.stdout, echo.stderr);
    assert!(a.payloads().is_empty());
}

/// The whole loop, as a hospital runs it: `ward dicom listen` receives a CT series from
/// storescu, runs the CT segmentation on it, and sends the DICOM SEG to a PACS (storescp).
#[test]
fn a_received_series_is_segmented_and_the_seg_sent_to_the_pacs() {
    let dir = tempdir();
    let pacs_dir = dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let (_pacs, pacs_port) = storescp(&pacs_dir, "PACS");
    let series = dir.path().join("series");
    let written = write_ct_series(
        &series,
        &CtSeriesOptions {
            slices: 24,
            size: 96,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    components_dir();
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let port = free_port();
    let storage = dir.path().join("storage");
    let config = dir.path().join("dicom.yaml");
    let text = config_text(
        &storage,
        port,
        &example,
        "    export: [{output: dicom-writer.seg, destination: pacs}]",
    ) + &format!(
        "destinations:\n  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: {pacs_port}}}\n"
    );
    std::fs::write(&config, text).unwrap();
    let _ward = Killed(
        ward()
            .args(["dicom", "listen", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    store_series(port, &series);

    // The job runs and its SEG reaches the PACS.
    let exports = settled_exports(&storage);
    let records = exports.as_array().unwrap();
    assert_eq!(records.len(), 1, "{exports}");
    assert_eq!(records[0]["ok"], true, "{exports}");
    assert_eq!(records[0]["destination"], "pacs");
    let received: Vec<PathBuf> = std::fs::read_dir(&pacs_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(received.len(), 1, "{received:?}");
    let dump = dcmdump(&[received[0].to_str().unwrap()]);
    assert_eq!(dump.code, 0, "{}", dump.stderr);
    assert!(
        dump.stdout.contains("SegmentationStorage"),
        "a DICOM SEG: {}",
        dump.stdout
    );
    assert!(
        dump.stdout.contains(&written.study_instance_uid),
        "it references the received study"
    );
    let payloads: Vec<_> = std::fs::read_dir(storage.join("payloads"))
        .unwrap()
        .collect();
    assert_eq!(payloads.len(), 1);
}

/// `assemble: study`: instances of one study sent over several associations become one
/// payload once the study is quiet; another study, another payload. The quiet period is
/// long beside the time the three sends take, and the "not yet" check is made only while
/// less than the quiet period has passed since the last send began, so load cannot make it
/// wrong; the end is waited for as every instance stored in a payload.
#[test]
fn a_study_sent_in_parts_becomes_one_payload_once_quiet() {
    const QUIET: Duration = Duration::from_secs(8);
    let a = adapter_with("    assemble: study\n    quiet: 8s", "");
    let dir = tempdir();
    let first = dir.path().join("first");
    let other = dir.path().join("other");
    write_ct_series(
        &first,
        &CtSeriesOptions {
            slices: 10,
            size: 16,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    write_ct_series(
        &other,
        &CtSeriesOptions {
            slices: 3,
            size: 16,
            seed: "another-study".into(),
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    // The first study in two halves, over two associations, with the other study between.
    let second_half = dir.path().join("second-half");
    std::fs::create_dir_all(&second_half).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&first)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in &files[5..] {
        std::fs::rename(f, second_half.join(f.file_name().unwrap())).unwrap();
    }
    store_series(a.port, &first);
    // Each study's quiet period starts at the earliest when the send of its last part began.
    let other_sent = Instant::now();
    store_series(a.port, &other);
    let second_half_sent = Instant::now();
    store_series(a.port, &second_half);
    let now = Instant::now();
    assert!(
        now - second_half_sent < QUIET,
        "the second half took longer to send than the quiet period"
    );
    if now - other_sent < QUIET {
        assert!(a.payloads().is_empty(), "not before the study is quiet");
    }
    let in_payloads = || -> usize {
        a.payloads()
            .iter()
            .map(|p| std::fs::read_dir(p).unwrap().count())
            .sum()
    };
    let deadline = Instant::now() + QUIET + Duration::from_secs(60);
    while in_payloads() < 13 {
        assert!(Instant::now() < deadline, "payloads: {:?}", a.payloads());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut sizes: Vec<usize> = a
        .payloads()
        .iter()
        .map(|p| std::fs::read_dir(p).unwrap().count())
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![3, 10], "one payload per study, whole");
    assert!(a.incoming_is_empty());
}

/// Routing conditions on DICOM attributes: a CT series runs only where the route asks for
/// CT with thin slices. Where it does not, the listener says so in its log, and only then is
/// the absence of a job checked.
#[test]
fn routing_conditions_decide_whether_the_pipeline_runs() {
    let series = tempdir();
    write_ct_series(
        series.path(),
        &CtSeriesOptions {
            slices: 4,
            size: 16,
            slice_thickness_mm: 2.5,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    for (when, runs) in [
        ("{modality: MR}", false),
        ("{modality: CT, max-slice-thickness: 2}", false),
        ("{modality: CT, max-slice-thickness: 5}", true),
    ] {
        let l = process::Listening::start(|storage, port| {
            let pipeline = noop_pipeline(storage.parent().unwrap());
            config_text(storage, port, &pipeline, &format!("    when: {when}"))
        });
        store_series(l.port, series.path());
        if runs {
            l.wait_for_log(&["job finished", "outcome=succeeded"]);
            assert_eq!(l.jobs().len(), 1, "when {when}");
        } else {
            l.wait_for_log(&["not run: the route's conditions are not met"]);
            assert!(l.jobs().is_empty(), "when {when}: a job started");
            assert!(l.queued().is_empty(), "when {when}: a job was queued");
        }
    }
}

fn wait_for_payloads_count(a: &Adapter, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.payloads().len() < n {
        assert!(Instant::now() < deadline, "payloads: {:?}", a.payloads());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PACS that is down when the results are ready gets them once it is back: the export is
/// retried with back-off, and each file's outcome and attempts are recorded.
#[test]
fn results_for_a_pacs_that_is_down_are_retried_until_it_is_back() {
    let pacs_port = free_port();
    components_dir();
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let dir = tempdir();
    let port = free_port();
    let storage = dir.path().join("storage");
    let config_path = dir.path().join("dicom.yaml");
    std::fs::write(
        &config_path,
        config_text(
            &storage,
            port,
            &example,
            "    export: [{output: dicom-writer.seg, destination: pacs}]",
        ) + &format!(
            "destinations:\n  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: {pacs_port}}}\n"
        ),
    )
    .unwrap();
    serve_in_process(&config_path);

    let series = dir.path().join("series");
    write_ct_series(
        &series,
        &CtSeriesOptions {
            slices: 12,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    store_series(port, &series);
    // Wait until the job has finished and a first export attempt has failed.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = std::fs::read_dir(storage.join("jobs"))
            .ok()
            .and_then(|mut j| j.next())
            .map(|j| j.unwrap().path().join("summary.json"))
            .filter(|p| p.exists())
            .is_some_and(|p| read_json(&p)["status"] == "succeeded");
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "the job did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1200));
    let pacs_dir = dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let _pacs = storescp_on(&pacs_dir, "PACS", pacs_port);
    let exports = settled_exports(&storage);
    assert_eq!(exports[0]["ok"], true, "{exports}");
    assert!(exports[0]["attempts"].as_u64().unwrap() > 1, "{exports}");
    assert_eq!(std::fs::read_dir(&pacs_dir).unwrap().count(), 1);
}

/// A truncated data set is refused with "cannot understand" and a SOP class Ward does not
/// store is refused at negotiation; the good instance beside them is stored, nothing else.
#[test]
fn a_truncated_instance_and_an_unaccepted_sop_class_are_refused_alone() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let a = adapter();
    let dir = tempdir();
    let series = write_ct_series(
        dir.path(),
        &CtSeriesOptions {
            slices: 3,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    let [good, truncated, ecg] = [0, 1, 2].map(|i| series.files[i].clone());
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    const ECG: &str = "1.2.840.10008.5.1.4.1.1.9.1.1";
    let mut obj = dicom_object::open_file(&ecg).unwrap();
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(ECG),
    ));
    obj.meta_mut().media_storage_sop_class_uid = ECG.to_string();
    obj.write_to_file(&ecg).unwrap();

    let peer: ward::dicom::peer::Peer = format!("CT_SEG@127.0.0.1:{}", a.port).parse().unwrap();
    let files = vec![good.clone(), truncated, ecg];
    let outcomes =
        ward::dicom::scu::send_files(&Default::default(), &peer, &files, |_| {}).unwrap();
    assert!(outcomes[0].is_success(), "{outcomes:#?}");
    assert_eq!(outcomes[1].status, Some(0xC000), "{outcomes:#?}");
    assert!(!outcomes[2].is_success(), "{outcomes:#?}");
    assert!(outcomes[2].message.contains("accept"), "{outcomes:#?}");
    wait_for_payloads_count(&a, 1);
    let stored: Vec<PathBuf> = std::fs::read_dir(&a.payloads()[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "only the good instance: {stored:?}");
    assert!(data_set(&good) == data_set(&stored[0]));
}

/// `ward dicom echo` and `ward dicom send`, as a user runs them.
#[test]
fn the_command_line_client_echoes_and_sends() {
    let a = adapter();
    let peer = format!("CT_SEG@127.0.0.1:{}", a.port);
    let echo = run_ward(&["dicom", "echo", &peer]);
    assert_eq!(echo.code, 0, "{}", echo.stderr);
    assert!(
        echo.stdout.contains("C-ECHO CT_SEG@127.0.0.1"),
        "{}",
        echo.stdout
    );
    let dir = tempdir();
    let series = write_ct_series(
        dir.path(),
        &CtSeriesOptions {
            slices: 6,
            size: 32,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    let mut args = vec!["dicom", "send", "--to", peer.as_str()];
    let files: Vec<String> = series
        .files
        .iter()
        .map(|f| f.to_str().unwrap().to_string())
        .collect();
    args.extend(files.iter().map(String::as_str));
    let sent = run_ward(&args);
    assert_eq!(sent.code, 0, "{}{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.contains("sent 6 of 6 files"), "{}", sent.stdout);
    wait_for_payloads_count(&a, 1);
    let down = run_ward(&["dicom", "echo", &format!("X@127.0.0.1:{}", free_port())]);
    assert_ne!(down.code, 0);
    assert!(
        down.stderr.contains("X@127.0.0.1"),
        "names the peer: {}",
        down.stderr
    );
}

/// The exports of the (one) job under `storage`, once none is pending; they are also in the
/// job's summary.
fn settled_exports(storage: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = std::fs::read_dir(storage.join("jobs"))
            .ok()
            .and_then(|mut jobs| jobs.next())
            .map(|job| job.unwrap().path());
        if let Some(job) = job.filter(|j| j.join("exports.json").exists()) {
            let exports = read_json(&job.join("exports.json"));
            let records = exports.as_array().unwrap();
            if !records.is_empty() && records.iter().all(|r| r["pending"] == false) {
                let summary = read_json(&job.join("summary.json"));
                assert_eq!(
                    summary["exports"], exports,
                    "the summary records the exports"
                );
                return exports;
            }
        }
        assert!(Instant::now() < deadline, "the exports did not settle");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Results queued for a PACS that is down survive Ward being killed: the next `ward dicom
/// listen` on the same storage sends them.
#[test]
fn pending_exports_survive_a_restart() {
    let dir = tempdir();
    let pacs_port = free_port();
    components_dir();
    let example = repo_root().join("examples/ct-segmentation/pipeline.yaml");
    let port = free_port();
    let storage = dir.path().join("storage");
    let config = dir.path().join("dicom.yaml");
    let text = config_text(
        &storage,
        port,
        &example,
        "    export: [{output: dicom-writer.seg, destination: pacs}]",
    ) + &format!(
        "destinations:\n  - {{name: pacs, ae-title: PACS, host: 127.0.0.1, port: {pacs_port}}}\n"
    );
    std::fs::write(&config, text).unwrap();
    let listen = || {
        let child = ward()
            .args(["dicom", "listen", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Killed(child)
    };
    let first = listen();
    let series = dir.path().join("series");
    write_ct_series(
        &series,
        &CtSeriesOptions {
            slices: 12,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    store_series(port, &series);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempted = std::fs::read_dir(storage.join("jobs"))
            .ok()
            .and_then(|mut jobs| jobs.next())
            .map(|job| job.unwrap().path().join("exports.json"))
            .filter(|p| p.exists())
            .is_some_and(|p| read_json(&p)[0]["attempts"].as_u64() >= Some(1));
        if attempted {
            break;
        }
        assert!(Instant::now() < deadline, "no export attempt");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(first); // SIGKILL, with the export pending.

    let pacs_dir = dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let _pacs = storescp_on(&pacs_dir, "PACS", pacs_port);
    let _second = listen();
    let exports = settled_exports(&storage);
    assert_eq!(exports[0]["ok"], true, "{exports}");
    assert_eq!(std::fs::read_dir(&pacs_dir).unwrap().count(), 1);
}

/// Over `max-associations` a caller is rejected as transient (local limit exceeded), and
/// served again once a slot is free. Connections that never speak hold no association slot.
#[test]
fn associations_over_the_limit_are_rejected_as_transient() {
    let a = adapter_with("", "max-connections-per-address: 64\n");
    // Idle sockets are only pending: they do not count against max-associations.
    let idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", a.port)).unwrap())
        .collect();
    // The limit of this adapter is 16: hold 16 associations.
    let held: Vec<_> = (0..16)
        .map(|_| {
            dicom_ul::association::client::ClientAssociationOptions::new()
                .with_abstract_syntax("1.2.840.10008.1.1")
                .called_ae_title("CT_SEG")
                .establish(("127.0.0.1", a.port))
                .unwrap()
        })
        .collect();
    let port = a.port.to_string();
    let refused = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
    assert_ne!(refused.code, 0);
    let text = refused.stdout + &refused.stderr;
    assert!(
        text.contains("Local Limit Exceeded") && text.contains("Transient"),
        "{text}"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let echo = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
        if echo.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{}{}", echo.stdout, echo.stderr);
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
}
