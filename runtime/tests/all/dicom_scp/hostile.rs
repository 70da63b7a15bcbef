//! Hostile DICOM peers against the real `ward dicom listen`: crafted PDUs over raw sockets
//! (endless command fragments, lengths that declare gigabytes) and sockets that never
//! associate. Each attack ends only the attacker's connection: the listener's memory stays
//! bounded, it still answers echoscu, and what it had stored is unchanged.

use super::{dcmtk, free_port, store_series, wait_for_port, Killed};
use crate::support::*;
use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
/// What an attack may add to the listener's peak memory: far less than what it sends or
/// declares (hundreds of megabytes, gigabytes), far more than the listener's own noise.
const MEMORY_SLACK_KIB: u64 = 100 * 1024;

/// A `ward dicom listen` process storing what its CT_SEG route receives.
struct Listener {
    child: Killed,
    port: u16,
    storage: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Listener {
    fn start() -> Listener {
        let dir = tempdir();
        let port = free_port();
        let storage = dir.path().join("storage");
        let config = dir.path().join("dicom.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nstorage: {}\nroutes:\n  - ae-title: CT_SEG\n",
                storage.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("listen.log");
        let child = ward()
            .args(["dicom", "listen", "--config", config.to_str().unwrap()])
            .env("WARD_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port);
        Listener {
            child: Killed(child),
            port,
            storage,
            log,
            dir,
        }
    }

    /// Peak resident memory of the listener so far, in KiB.
    fn peak_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Every stored file (by path under payloads/) and its bytes.
    fn stored(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut all = BTreeMap::new();
        let payloads = self.storage.join("payloads");
        for payload in std::fs::read_dir(&payloads).unwrap() {
            for file in std::fs::read_dir(payload.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                all.insert(path.strip_prefix(&payloads).unwrap().to_path_buf(), bytes);
            }
        }
        all
    }

    /// Sends a small series with storescu and waits until it is stored.
    fn store_a_series(&self, seed: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let series = self.dir.path().join(seed);
        write_ct_series(
            &series,
            &CtSeriesOptions {
                slices: 4,
                size: 32,
                seed: seed.into(),
                ..CtSeriesOptions::default()
            },
        )
        .unwrap();
        let before = self.stored().len();
        store_series(self.port, &series);
        wait_until("the series is stored", || self.stored().len() >= before + 4);
        self.stored()
    }

    /// Waits until the log holds every one of `needles` (on one line).
    fn wait_for_log(&self, needles: &[&str]) -> String {
        super::process::wait_for_log(&self.log, needles)
    }

    /// After an attack: the listener is up, answers C-ECHO, and kept what it had stored.
    fn still_serving(&self, stored: &BTreeMap<PathBuf, Vec<u8>>) {
        let port = self.port.to_string();
        let echo = dcmtk("echoscu", &["-aec", "CT_SEG", "127.0.0.1", &port]);
        assert_eq!(echo.code, 0, "{}{}", echo.stdout, echo.stderr);
        let now = self.stored();
        for (path, bytes) in stored {
            assert!(
                now.get(path) == Some(bytes),
                "{} was lost or changed",
                path.display()
            );
        }
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real association, as a hostile peer calling itself HOSTILE opens it.
fn associate(port: u16) -> (ClientAssociation<TcpStream>, u8) {
    let assoc = ClientAssociationOptions::new()
        .calling_ae_title("HOSTILE")
        .called_ae_title("CT_SEG")
        .with_presentation_context(CT, vec![EXPLICIT])
        .read_timeout(Duration::from_secs(60))
        .write_timeout(Duration::from_secs(60))
        .establish(("127.0.0.1", port))
        .unwrap();
    let pc = assoc.presentation_contexts()[0].id;
    (assoc, pc)
}

fn pdata(pc: u8, value_type: PDataValueType, is_last: bool, data: Vec<u8>) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type,
            is_last,
            data,
        }],
    }
}

/// The association was ended by the listener: an A-ABORT, or the connection closed.
fn assert_aborted(assoc: &mut ClientAssociation<TcpStream>) {
    match assoc.receive() {
        Ok(Pdu::AbortRQ { .. }) | Err(_) => {}
        Ok(other) => panic!("expected an A-ABORT, got {}", other.short_description()),
    }
}

/// One explicit VR little endian element of a short VR.
fn short(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend(vr);
    out.extend((value.len() as u16).to_le_bytes());
    out.extend(value);
    out
}

#[test]
fn endless_command_fragments_are_aborted_and_memory_stays_bounded() {
    let l = Listener::start();
    let stored = l.store_a_series("before-fragments");
    let peak = l.peak_kib();
    let (mut assoc, pc) = associate(l.port);
    let fragment = vec![0u8; 64 * 1024];
    let (mut sent, limit) = (0u64, 300u64 << 20);
    let mut closed = false;
    while sent < limit {
        if assoc
            .send(&pdata(pc, PDataValueType::Command, false, fragment.clone()))
            .is_err()
        {
            closed = true;
            break;
        }
        sent += fragment.len() as u64;
    }
    assert!(closed, "the listener took {sent} bytes of one command set");
    let log = l.wait_for_log(&["command set is over", "peer=127.0.0.1", "calling=HOSTILE"]);
    assert!(log.contains("16384 byte limit"), "{log}");
    let grown = l.peak_kib().saturating_sub(peak);
    assert!(
        grown < MEMORY_SLACK_KIB,
        "peak memory grew by {grown} KiB after {sent} bytes"
    );
    l.still_serving(&stored);
}

#[test]
fn a_command_declaring_gigabytes_is_refused_without_reserving_them() {
    let l = Listener::start();
    let stored = l.store_a_series("before-command");
    let peak = l.peak_kib();
    let (mut assoc, pc) = associate(l.port);
    // (0000,0002) Affected SOP Class UID declaring 4 GiB - 16 bytes; 26 follow.
    let mut command = vec![0x00, 0x00, 0x02, 0x00, 0xF0, 0xFF, 0xFF, 0xFF];
    command.extend(b"1.2.840.10008.5.1.4.1.1.2\0");
    assoc
        .send(&pdata(pc, PDataValueType::Command, true, command))
        .unwrap();
    assert_aborted(&mut assoc);
    let grown = l.peak_kib().saturating_sub(peak);
    assert!(grown < MEMORY_SLACK_KIB, "peak memory grew by {grown} KiB");
    l.wait_for_log(&[
        "(0000,0002) declares 4294967280 bytes, 26 remain",
        "calling=HOSTILE",
    ]);
    l.still_serving(&stored);
}

#[test]
fn a_data_set_declaring_gigabytes_is_refused_without_reserving_them() {
    let l = Listener::start();
    let stored = l.store_a_series("before-data-set");
    let peak = l.peak_kib();
    let (mut assoc, pc) = associate(l.port);
    let instance = "1.2.826.0.1.3680043.8.498.1";
    assoc
        .send(&pdata(
            pc,
            PDataValueType::Command,
            true,
            ward::dicom::dimse::store_rq(1, CT, instance),
        ))
        .unwrap();
    let mut data = short(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\0");
    data.extend(short(
        0x0008,
        0x0018,
        b"UI",
        format!("{instance}\0").as_bytes(),
    ));
    // (7FE0,0010) OW declaring 4 GiB - 16 bytes; 100 follow.
    data.extend([
        0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0, 0xF0, 0xFF, 0xFF, 0xFF,
    ]);
    data.extend([0u8; 100]);
    assoc
        .send(&pdata(pc, PDataValueType::Data, true, data))
        .unwrap();
    let rsp = match assoc.receive().unwrap() {
        Pdu::PData { data } => ward::dicom::dimse::decode(&data[0].data).unwrap(),
        other => panic!(
            "expected the C-STORE-RSP, got {}",
            other.short_description()
        ),
    };
    assert_eq!(rsp.status, Some(0xC000), "{rsp:?}");
    let comment = rsp.error_comment.unwrap_or_default();
    assert!(
        comment.contains("(7FE0,0010) declares 4294967280 bytes, 100 remain"),
        "{comment}"
    );
    assoc.release().unwrap();
    let grown = l.peak_kib().saturating_sub(peak);
    assert!(grown < MEMORY_SLACK_KIB, "peak memory grew by {grown} KiB");
    l.still_serving(&stored);
    assert!(
        !l.stored()
            .keys()
            .any(|p| p.to_string_lossy().contains(instance)),
        "the refused instance is not stored"
    );
}

/// A TCP connection to `port` on the loopback from source address `from`.
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &std::net::SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &std::net::SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    TcpStream::from(fd)
}

#[test]
fn a_hundred_sockets_that_never_associate_do_not_stop_a_series() {
    let l = Listener::start();
    let stored = l.store_a_series("before-idle");
    // Another host (127.0.0.2) opens 100 connections and never speaks.
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| connect_from([127, 0, 0, 2], l.port))
        .collect();
    // They reach the listener before storescu does (one accept queue).
    let after = l.store_a_series("during-idle");
    assert_eq!(after.len(), stored.len() + 4);
    l.wait_for_log(&["peer=127.0.0.2", "max-connections-per-address"]);
    l.still_serving(&stored);
    drop(idle);
}

/// A C-STORE-RQ that arrives while another instance's data set is unfinished: the
/// unfinished one is dropped with its temporary file; only whole instances are stored.
#[test]
fn a_new_store_request_drops_the_unfinished_instance_and_its_file() {
    let l = Listener::start();
    let dir = tempdir();
    let series = write_ct_series(
        dir.path(),
        &CtSeriesOptions {
            slices: 2,
            size: 32,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    let uid = |f: &Path| {
        let obj = dicom_object::open_file(f).unwrap();
        obj.meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string()
    };
    let (first, second) = (&series.files[0], &series.files[1]);
    let (mut assoc, pc) = associate(l.port);
    let send = |assoc: &mut ClientAssociation<TcpStream>, ty, last, data| {
        assoc.send(&pdata(pc, ty, last, data)).unwrap()
    };
    send(
        &mut assoc,
        PDataValueType::Command,
        true,
        ward::dicom::dimse::store_rq(1, CT, &uid(first)),
    );
    let data = super::data_set(first);
    send(
        &mut assoc,
        PDataValueType::Data,
        false,
        data[..data.len() / 2].to_vec(),
    );
    send(
        &mut assoc,
        PDataValueType::Command,
        true,
        ward::dicom::dimse::store_rq(2, CT, &uid(second)),
    );
    send(
        &mut assoc,
        PDataValueType::Data,
        true,
        super::data_set(second),
    );
    let rsp = match assoc.receive().unwrap() {
        Pdu::PData { data } => ward::dicom::dimse::decode(&data[0].data).unwrap(),
        other => panic!(
            "expected the C-STORE-RSP, got {}",
            other.short_description()
        ),
    };
    assert_eq!(
        (rsp.responding_to, rsp.status),
        (Some(2), Some(0)),
        "{rsp:?}"
    );
    assoc.release().unwrap();
    wait_until("the payload is stored", || !l.stored().is_empty());
    let names: Vec<String> = l
        .stored()
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![format!("{}.dcm", uid(second))],
        "no temporary file left"
    );
    let incoming: Vec<_> = std::fs::read_dir(l.storage.join("incoming"))
        .unwrap()
        .collect();
    assert!(incoming.is_empty(), "{incoming:?}");
}
