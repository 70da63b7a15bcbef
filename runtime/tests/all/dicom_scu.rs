//! The C-ECHO and C-STORE SCU against real DCMTK peers: storescp must receive every data set
//! byte for byte as it was stored (compressed ones included), dcmqrscp must refuse a wrong
//! called AE title, and each failure must name the peer and what went wrong.

use crate::support::*;
use dicom_object::FileMetaTable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ward::dicom::peer::Peer;
use ward::dicom::scu::{self, FileOutcome, ScuError, ScuOptions, StoreResult};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// A DCMTK server process, killed when the test ends however it ends.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    log: PathBuf,
}

impl Server {
    /// Its output so far, for assertion messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `command(port)` on a free port and waits until it accepts connections. The port
/// is free when chosen but may be taken before the server binds it: then another is tried.
/// `None` when the program is not installed.
fn start(log_dir: &Path, command: impl Fn(u16) -> Command) -> Option<Server> {
    for attempt in 0..5 {
        let port = free_port();
        let log = log_dir.join(format!("server-{attempt}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = command(port);
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot start {cmd:?}: {e}"),
        };
        let mut server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if server.child.try_wait().unwrap().is_some() {
                break; // it exited: most likely the port was taken; try another
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            assert!(
                Instant::now() < deadline,
                "{cmd:?} does not listen on {port}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no DCMTK server could be started");
}

/// DCMTK's storescp as `STORESCP`, storing into `out` exactly what arrives (+B), with `extra`
/// options; by default it accepts every transfer syntax it knows (+xa).
pub(crate) fn storescp(log_dir: &Path, out: &Path, extra: &[&str]) -> Server {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let accept = if extra.iter().any(|a| a.starts_with("+x")) {
        vec![]
    } else {
        vec!["+xa".to_string()]
    };
    start(log_dir, |port| {
        let mut cmd = Command::new(dcmtk_tool("storescp"));
        cmd.args(["--aetitle", "STORESCP", "--output-directory"])
            .arg(out)
            .args(["+B", "--max-pdu", "131072"])
            .args(&accept)
            .args(&extra)
            .arg(port.to_string());
        cmd
    })
    .expect("storescp is needed (apt-get install -y dcmtk)")
}

fn peer(ae: &str, port: u16) -> Peer {
    Peer {
        ae_title: ae.into(),
        host: "127.0.0.1".into(),
        port,
    }
}

fn options() -> ScuOptions {
    ScuOptions {
        calling_ae: "WARDTEST".into(),
        timeout: Duration::from_secs(20),
        ..ScuOptions::default()
    }
}

/// A DICOM file's meta information and the data set bytes after it.
fn split(path: &Path) -> (FileMetaTable, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[128..132],
        b"DICM",
        "{} has no DICM prefix",
        path.display()
    );
    let mut rest = &bytes[128..];
    let meta =
        FileMetaTable::from_reader(&mut rest).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta, rest.to_vec())
}

fn clean(uid: &str) -> String {
    uid.trim_end_matches(['\0', ' ']).to_string()
}

/// What storescp wrote, by SOP instance UID: (transfer syntax, data set bytes, path).
fn received(dir: &Path) -> BTreeMap<String, (String, Vec<u8>, PathBuf)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| {
            let (meta, data) = split(&path);
            (
                clean(meta.media_storage_sop_instance_uid()),
                (clean(meta.transfer_syntax()), data, path),
            )
        })
        .collect()
}

fn assert_sent_as_stored(sent: &[PathBuf], dir: &Path) {
    let got = received(dir);
    assert_eq!(got.len(), sent.len(), "received: {:?}", got.keys());
    for file in sent {
        let (meta, data) = split(file);
        let instance = clean(meta.media_storage_sop_instance_uid());
        let (ts, received, path) = got
            .get(&instance)
            .unwrap_or_else(|| panic!("{instance} did not arrive"));
        assert_eq!(*ts, clean(meta.transfer_syntax()), "{instance}");
        assert!(
            *received == data,
            "the data set of {} arrived changed ({} bytes sent, {} received)",
            file.display(),
            data.len(),
            received.len()
        );
        let dump = dcmdump(&[path.to_str().unwrap()]);
        assert_eq!(dump.code, 0, "dcmdump {}: {}", path.display(), dump.stderr);
        assert!(dump.stdout.contains(&instance), "{}", dump.stdout);
    }
}

fn ct_series(dir: &Path, slices: u32, size: u32) -> Vec<PathBuf> {
    write_ct_series(
        dir,
        &CtSeriesOptions {
            slices,
            size,
            ..Default::default()
        },
    )
    .unwrap()
    .files
}

#[test]
fn echo_reaches_storescp() {
    let work = tempdir();
    let out = tempdir();
    let scp = storescp(work.path(), out.path(), &[]);
    let rtt = scu::echo(&options(), &peer("STORESCP", scp.port))
        .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}

#[test]
fn echo_to_a_closed_port_names_the_peer() {
    let port = free_port();
    let err = scu::echo(&options(), &peer("NOBODY", port)).unwrap_err();
    assert!(matches!(err, ScuError::Refused { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("NOBODY@127.0.0.1:{port}")) && text.contains("refused"),
        "{text}"
    );
}

/// storescp answers any called AE title; dcmqrscp refuses titles missing from its
/// configuration, as a PACS does. (In --single-process mode it exits after one association,
/// so it runs in its default mode, forking one process per association.)
#[test]
fn echo_with_a_wrong_called_ae_title_is_rejected() {
    let work = tempdir();
    let db = work.path().join("db");
    std::fs::create_dir(&db).unwrap();
    let config = work.path().join("dcmqrscp.cfg");
    let server = start(work.path(), |port| {
        std::fs::write(
            &config,
            format!(
                "NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 4\n\
                 HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n\
                 AETable BEGIN\nQRSCP {} RW (10, 64mb) ANY\nAETable END\n",
                db.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(dcmtk_tool("dcmqrscp"));
        cmd.arg("-c").arg(&config).arg(port.to_string());
        cmd
    });
    let server = server.expect("DCMTK's dcmqrscp starts");
    scu::echo(&options(), &peer("QRSCP", server.port))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let err = scu::echo(&options(), &peer("WRONG", server.port)).unwrap_err();
    assert!(matches!(err, ScuError::Rejected { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("WRONG@127.0.0.1:{}", server.port))
            && text.contains("called AE title not recognized"),
        "{text}"
    );
}

#[test]
fn a_ct_series_arrives_byte_identical() {
    let work = tempdir();
    let out = tempdir();
    let files = ct_series(&work.path().join("ct"), 20, 128);
    let scp = storescp(work.path(), out.path(), &[]);
    let mut seen = Vec::new();
    let start = Instant::now();
    let outcomes = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |o| {
        seen.push(o.path.clone())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    let took = start.elapsed();
    assert_eq!(seen, files, "progress reports every file, in order");
    for o in &outcomes {
        assert_eq!(
            (o.result, o.status),
            (StoreResult::Stored, Some(0)),
            "{o:?}"
        );
        assert!(o.is_success() && o.sop_instance.is_some() && o.bytes > 0);
    }
    let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
    eprintln!(
        "sent {} files ({:.1} MB) in {:.1} ms: {:.0} files/s",
        files.len(),
        bytes as f64 / 1e6,
        took.as_secs_f64() * 1e3,
        files.len() as f64 / took.as_secs_f64()
    );
    assert_sent_as_stored(&files, out.path());
}

/// Compressed data sets go as stored, each in its own transfer syntax, on one association.
#[test]
fn compressed_files_go_as_stored() {
    let data = pydicom_test_files();
    let files: Vec<PathBuf> = [
        "MR_small_RLE.dcm",
        "JPEGLSNearLossless_16.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEG-lossy.dcm",
        "CT_small.dcm",
    ]
    .iter()
    .map(|f| data.join(f))
    .collect();
    let work = tempdir();
    let out = tempdir();
    let scp = storescp(work.path(), out.path(), &[]);
    let outcomes = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    for o in &outcomes {
        assert_eq!(o.result, StoreResult::Stored, "{o:?}\n{}", scp.log());
    }
    assert_sent_as_stored(&files, out.path());
}

fn pydicom_test_files() -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydicom is needed (pip install pydicom): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn failures(outcomes: &[FileOutcome]) -> Vec<&FileOutcome> {
    outcomes.iter().filter(|o| !o.is_success()).collect()
}

#[test]
fn a_non_dicom_file_fails_alone() {
    let work = tempdir();
    let out = tempdir();
    let mut files = ct_series(&work.path().join("ct"), 3, 32);
    let notes = work.path().join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    files.insert(1, notes.clone());
    let scp = storescp(work.path(), out.path(), &[]);
    let outcomes = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    assert_eq!(outcomes.len(), 4);
    let failed = failures(&outcomes);
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    assert_eq!(failed[0].path, notes);
    assert_eq!((failed[0].status, &failed[0].sop_instance), (None, &None));
    assert!(
        failed[0].message.contains("not a DICOM file"),
        "{}",
        failed[0].message
    );
    files.remove(1);
    assert_sent_as_stored(&files, out.path());
}

/// A SOP class storescp does not know: its presentation context is rejected, so that file
/// fails and the rest of the association goes on.
#[test]
fn a_rejected_sop_class_fails_alone() {
    let work = tempdir();
    let out = tempdir();
    let mut files = ct_series(&work.path().join("ct"), 2, 32);
    let odd = work.path().join("odd.dcm");
    let mut obj = dicom_object::open_file(&files[0]).unwrap();
    let class = "1.2.826.0.1.3680043.9.7433.1.1";
    let instance = "1.2.826.0.1.3680043.9.7433.2.1";
    obj.update_meta(|m| {
        m.media_storage_sop_class_uid = class.into();
        m.media_storage_sop_instance_uid = instance.into();
    });
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::SOP_CLASS_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from(class),
    ));
    obj.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::SOP_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from(instance),
    ));
    obj.write_to_file(&odd).unwrap();
    files.push(odd.clone());
    let scp = storescp(work.path(), out.path(), &[]);
    let outcomes = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    let failed = failures(&outcomes);
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    assert_eq!(failed[0].path, odd);
    assert!(
        failed[0].message.contains("did not accept") && failed[0].message.contains(class),
        "{}",
        failed[0].message
    );
    files.pop();
    assert_sent_as_stored(&files, out.path());
}

/// A peer that takes only implicit VR little endian gets explicit VR files re-encoded: same
/// elements, same pixels, and the same data set DCMTK's own re-encoding (dcmconv +ti)
/// gives, compared as dcmdump prints them.
#[test]
fn an_implicit_only_peer_gets_implicit_data_sets() {
    let work = tempdir();
    let out = tempdir();
    let files = ct_series(&work.path().join("ct"), 3, 32);
    let scp = storescp(work.path(), out.path(), &["+xi"]);
    let outcomes = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |_| {})
        .unwrap_or_else(|e| panic!("{e}\n{}", scp.log()));
    assert!(failures(&outcomes).is_empty(), "{outcomes:?}");
    let got = received(out.path());
    assert_eq!(got.len(), files.len());
    for file in &files {
        let sent = dicom_object::open_file(file).unwrap();
        let instance = clean(sent.meta().media_storage_sop_instance_uid());
        let (ts, data, path) = &got[&instance];
        assert_eq!(ts, "1.2.840.10008.1.2");
        let implicit = dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased();
        let obj =
            dicom_object::InMemDicomObject::read_dataset_with_ts(&data[..], &implicit).unwrap();
        let pixels = |o: &dicom_object::InMemDicomObject| {
            o.element(dicom_dictionary_std::tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .into_owned()
        };
        assert!(pixels(&obj) == pixels(&sent), "{instance}: pixels differ");
        let mut expected = Vec::new();
        sent.write_dataset_with_ts(&mut expected, &implicit)
            .unwrap();
        assert!(*data == expected, "{instance}: data set differs");
        let dump = dcmdump(&[path.to_str().unwrap()]);
        assert_eq!(dump.code, 0, "{}", dump.stderr);
        let by_dcmtk = work.path().join(format!("{instance}.dcmconv.dcm"));
        let converted = std::process::Command::new(dcmtk_tool("dcmconv"))
            .arg("+ti")
            .arg(file)
            .arg(&by_dcmtk)
            .status()
            .unwrap_or_else(|e| panic!("dcmconv is needed (apt-get install -y dcmtk): {e}"));
        assert!(converted.success(), "dcmconv +ti {}", file.display());
        let expected = dcmdump(&[by_dcmtk.to_str().unwrap()]);
        assert_eq!(
            data_set_lines(&dump.stdout),
            data_set_lines(&expected.stdout),
            "{instance}: the data set differs from DCMTK's implicit VR re-encoding"
        );
    }
}

/// dcmdump's lines for the data set, without the file meta group (which names the sender).
fn data_set_lines(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter(|l| l.starts_with('(') && !l.starts_with("(0002,"))
        .collect()
}

#[test]
fn an_abort_by_the_peer_is_an_error_naming_it() {
    let work = tempdir();
    let out = tempdir();
    let files = ct_series(&work.path().join("ct"), 2, 32);
    let scp = storescp(work.path(), out.path(), &["--abort-after"]);
    let mut reported = 0;
    let err = scu::send_files(&options(), &peer("STORESCP", scp.port), &files, |_| {
        reported += 1
    })
    .unwrap_err();
    assert!(matches!(err, ScuError::Aborted { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("STORESCP@127.0.0.1:{}", scp.port)) && text.contains("C-STORE-RSP"),
        "{text}"
    );
    assert_eq!(reported, 0);
}

#[test]
fn a_peer_that_stops_answering_times_out_naming_it() {
    let work = tempdir();
    let out = tempdir();
    let files = ct_series(&work.path().join("ct"), 1, 32);
    let scp = storescp(work.path(), out.path(), &["--sleep-during", "10"]);
    let opts = ScuOptions {
        timeout: Duration::from_millis(500),
        ..options()
    };
    let start = Instant::now();
    let err = scu::send_files(&opts, &peer("STORESCP", scp.port), &files, |_| {}).unwrap_err();
    assert!(matches!(err, ScuError::Timeout { .. }), "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("STORESCP@127.0.0.1:{}", scp.port)) && text.contains("C-STORE-RSP"),
        "{text}"
    );
}
