//! The DICOM adapter against a second, independent DIMSE implementation: pynetdicom (Python,
//! no code shared with DCMTK or dicom-rs). A pynetdicom SCU stores a CT series into the real
//! `ward dicom listen`; the pipeline's SEG is exported to a pynetdicom SCP; pydicom reads
//! what arrived.

use crate::dicom_scp::{free_port, wait_for_port, Killed};
use crate::support::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// The Python scripts that play the peers.
fn peer_script(name: &str) -> PathBuf {
    repo_root().join("runtime/tests/peers").join(name)
}

/// A pynetdicom Storage SCP; stopped (stdin closed, then killed) when dropped.
struct PythonScp {
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for PythonScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pynetdicom_scp(port: u16, title: &str, out: &Path) -> PythonScp {
    let mut child = Command::new("python3")
        .arg(peer_script("pynetdicom_scp.py"))
        .args([&port.to_string(), title, out.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        "listening",
        "the pynetdicom SCP starts (pip install pynetdicom==3.0.4)"
    );
    PythonScp {
        child,
        _stdin: stdin,
    }
}

/// One attribute of a DICOM file as pydicom reads it (`expression` is Python, on
/// `ds`, e.g. `ds.SOPClassUID`).
fn pydicom_value(file: &Path, expression: &str) -> String {
    let script =
        format!("import sys, pydicom\nds = pydicom.dcmread(sys.argv[1])\nprint({expression})");
    stdout_of(Command::new("python3").args(["-c", &script, file.to_str().unwrap()]))
        .trim()
        .to_string()
}

/// Waits (generously: a busy 2-core machine runs the whole pipeline) for a whole file in `dir`.
fn first_file_in(dir: &Path, deadline: Duration) -> PathBuf {
    let end = Instant::now() + deadline;
    loop {
        let done: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
            .collect();
        if let Some(file) = done.into_iter().next() {
            return file;
        }
        assert!(
            Instant::now() < end,
            "nothing reached the pynetdicom SCP in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_pynetdicom_modality_and_a_pynetdicom_pacs_talk_to_the_adapter() {
    let dir = tempdir();
    let pacs_dir = dir.path().join("pacs");
    std::fs::create_dir_all(&pacs_dir).unwrap();
    let pacs_port = free_port();
    let _pacs = pynetdicom_scp(pacs_port, "PYPACS", &pacs_dir);

    let series = write_ct_series(
        &dir.path().join("series"),
        &CtSeriesOptions {
            slices: 16,
            size: 64,
            ..CtSeriesOptions::default()
        },
    )
    .unwrap();
    components_dir();
    let port = free_port();
    let storage = dir.path().join("storage");
    let config = dir.path().join("dicom.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}
storage: {storage}
routes:
  - ae-title: CT_SEG
    pipelines: [{pipeline}]
    export: [{{output: dicom-writer.seg, destination: pacs}}]
destinations:
  - {{name: pacs, ae-title: PYPACS, host: 127.0.0.1, port: {pacs_port}}}
",
            storage = storage.display(),
            pipeline = repo_root()
                .join("examples/ct-segmentation/pipeline.yaml")
                .display(),
        ),
    )
    .unwrap();
    let _ward = Killed(
        ward()
            .args(["dicom", "listen", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);

    let sent = Command::new("python3")
        .arg(peer_script("pynetdicom_scu.py"))
        .args(["127.0.0.1", &port.to_string(), "CT_SEG"])
        .args(&series.files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.ends_with(" 0x0000")).count(),
        series.files.len(),
        "every C-STORE answered with success: {report}"
    );

    let seg = first_file_in(&pacs_dir, Duration::from_secs(300));
    assert_eq!(
        pydicom_value(&seg, "ds.SOPClassUID"),
        "1.2.840.10008.5.1.4.1.1.66.4",
        "a DICOM Segmentation reached the pynetdicom PACS"
    );
    assert_eq!(
        pydicom_value(&seg, "ds.StudyInstanceUID"),
        series.study_instance_uid
    );
    assert_eq!(
        pydicom_value(&seg, "ds.ReferencedSeriesSequence[0].SeriesInstanceUID"),
        series.series_instance_uid,
        "the SEG references the series pynetdicom sent"
    );
    assert_eq!(
        pydicom_value(
            &seg,
            "len(ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence)"
        ),
        series.files.len().to_string(),
        "every sent slice is referenced"
    );
}
