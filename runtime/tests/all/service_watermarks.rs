//! Disk watermarks through a real `ward serve` hosting its DICOM adapter: with the disk
//! above the high watermark (set below what this machine's disk already holds), a modality
//! (pynetdicom's Storage SCU) gets Out of Resources (0xA700) for every instance and a STOW-RS
//! body gets 507,
//! nothing is stored, and `/metrics` says ingest is paused.

use crate::dicom_scp::{free_port, wait_for_port};
use crate::service::{Server, METRICS, RAD_OP};
use crate::support::*;

#[test]
fn above_the_high_watermark_dimse_and_stow_ingest_are_refused_transiently() {
    let dir = tempdir();
    let dicom_port = free_port();
    std::fs::write(
        dir.path().join("adapter.yaml"),
        format!(
            "listen: 127.0.0.1:{dicom_port}
storage: dicom
routes:
  - ae-title: RAD_IN
    tenant: radiology
"
        ),
    )
    .unwrap();
    // Any disk in use holds more than 0.01%.
    let server = Server::start_in(
        dir,
        2,
        "4Gi",
        2,
        "dicom: adapter.yaml\ndisk: {high-watermark: 0.01%, low-watermark: 0%}",
        "http",
    );
    wait_for_port(dicom_port);
    let series = tempdir();
    ward::sample::ct_series::write_ct_series(
        series.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 2,
            size: 32,
            ..Default::default()
        },
    )
    .unwrap();

    // A modality (pynetdicom's Storage SCU) sends both instances in one association.
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(series.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let sent = std::process::Command::new("python3")
        .arg(repo_root().join("runtime/tests/peers/pynetdicom_scu.py"))
        .args(["127.0.0.1", &dicom_port.to_string(), "RAD_IN"])
        .args(&files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&sent.stdout).to_string();
    assert_eq!(
        report.lines().filter(|l| l.ends_with(" 0xA700")).count(),
        files.len(),
        "every instance is refused with Out of Resources: {report}{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    let boundary = "ward-watermark-boundary";
    let mut body = Vec::new();
    for file in &files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&std::fs::read(file).unwrap());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let (code, _, answer) =
        server.send_with_headers("POST", "/v1/dicomweb/studies", RAD_OP, &content_type, &body);
    assert_eq!(code, 507, "{answer}");
    assert_eq!(answer["error"]["code"], "insufficient-storage", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("high watermark"),
        "{answer}"
    );

    // Nothing was kept: no payload for the tenant.
    let payloads = server.ok("GET", "/v1/payloads", RAD_OP, None);
    assert_eq!(
        payloads["items"].as_array().map(|a| a.len()),
        Some(0),
        "{payloads}"
    );
    let metrics = String::from_utf8(server.bytes("/metrics", METRICS)).unwrap();
    assert!(
        metrics.lines().any(|l| l == "ward_ingest_paused 1"),
        "{metrics}"
    );
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ward_ingest_refused_disk_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 3, "two instances and a body: {refused}");
}
