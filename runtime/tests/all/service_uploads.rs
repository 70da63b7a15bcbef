//! `ward serve` under hostile uploads and downloads, through the real binary and curl: bodies
//! are streamed (the server's peak memory stays far below what is sent), a boundary flood is
//! refused, tenants' staging never collides, the storage quota holds across concurrent
//! uploads, and parallel downloads stream. After each, the service is up and what it had
//! stored is unchanged.

use crate::service::{hash, Server, RAD_OP, RAD_VIEW};
use crate::support::*;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const A_OP: &str = "tenant-a-operator-token";
const AB_OP: &str = "tenant-a-b-operator-token";
const Q_OP: &str = "tenant-q-operator-token";

/// What the server's peak memory may rise by during one attack.
const RSS_HEADROOM: u64 = 64 << 20;

/// A service that takes uploads of up to 1 GiB, with tenants `a`, `a-b` (names that once
/// collided in staging) and `q` (a storage quota of `q_quota`).
fn server(q_quota: &str) -> Server {
    server_in(tempdir(), q_quota, "")
}

/// As `server`, in `dir`, with `extra` configuration.
fn server_in(dir: tempfile::TempDir, q_quota: &str, extra: &str) -> Server {
    let tenants = format!(
        "  - name: a
    tokens: [{{name: operator, role: operator, sha256: {a}}}]
  - name: a-b
    tokens: [{{name: operator, role: operator, sha256: {ab}}}]
  - name: q
    tokens: [{{name: operator, role: operator, sha256: {q}}}]
    quotas: {{storage: {q_quota}}}",
        a = hash(A_OP),
        ab = hash(AB_OP),
        q = hash(Q_OP),
    );
    let extra = format!("max-upload: 1Gi\n{extra}");
    Server::start_with(dir, 2, "4Gi", 2, &extra, &tenants, "http")
}

/// The server's peak resident memory so far (VmHWM), in bytes.
fn peak_rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// What curl answered: HTTP status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// `curl` sending `file` as the body (streamed, never read whole), with `extra` arguments.
fn curl_upload(
    server: &Server,
    path: &str,
    token: &str,
    content_type: &str,
    file: &Path,
    extra: &[&str],
) -> Answer {
    let out = Command::new("curl")
        .args(["-sS", "-X", "POST", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(["-H", "Expect:"])
        .arg("-T")
        .arg(file)
        .args(extra)
        .arg(format!("{}{path}", server.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Answer {
        status: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
    }
}

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// Writes `size` bytes of a pattern seeded by `seed` to `path`, a MiB at a time.
fn pattern_file(path: &Path, size: usize, seed: u8) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block: Vec<u8> = (0..1 << 20)
        .map(|i: usize| (i.wrapping_mul(31) as u8) ^ seed)
        .collect();
    let mut left = size;
    let mut n = 0u8;
    while left > 0 {
        block[0] = n;
        n = n.wrapping_add(1);
        let take = left.min(block.len());
        f.write_all(&block[..take]).unwrap();
        left -= take;
    }
}

/// A tar archive (on disk) of `dir`.
fn tar_of(dir: &Path, archive: &Path) {
    let out = Command::new("tar")
        .arg("-cf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small payload stored before an attack, to check it is unchanged after.
struct Existing {
    id: String,
    source: tempfile::TempDir,
}

fn existing(server: &Server) -> Existing {
    let source = small_payload();
    let id = server.payload(RAD_OP, source.path());
    Existing { id, source }
}

/// The service is up, `existing` is listed and downloads as it was uploaded, and no upload
/// is left half-stored.
fn assert_intact(server: &Server, existing: &Existing) {
    let (code, _) = server.call("GET", "/healthz", None, None);
    assert_eq!(code, 200, "the service is up");
    let row = server.ok(
        "GET",
        &format!("/v1/payloads/{}", existing.id),
        RAD_OP,
        None,
    );
    assert_eq!(row["state"], "complete");
    let tar = server.bytes(&format!("/v1/payloads/{}/archive", existing.id), RAD_VIEW);
    let back = tempdir();
    tar::Archive::new(&tar[..]).unpack(back.path()).unwrap();
    for file in ["notes.txt", "sub/data.bin"] {
        assert_eq!(
            std::fs::read(back.path().join(file)).unwrap(),
            std::fs::read(existing.source.path().join(file)).unwrap(),
            "{file} unchanged"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<PathBuf> = std::fs::read_dir(server.state.join("uploads"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "uploads left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One CT instance of about 2 MiB and its SOP Instance UID.
fn ct_instance(dir: &Path) -> (Vec<u8>, String) {
    let series = ward::sample::ct_series::write_ct_series(
        dir,
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 1,
            size: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let file = &series.files[0];
    let obj = dicom_object::open_file(file).unwrap();
    let uid = obj
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string();
    (std::fs::read(file).unwrap(), uid)
}

/// `bytes` with every occurrence of `from` replaced by `to` (of the same length).
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut at = 0;
    while let Some(i) = memchr::memmem::find(&out[at..], from) {
        out[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + to.len();
    }
    out
}

const BOUNDARY: &str = "ward-stow-boundary-41c7";

fn stow_type() -> String {
    format!("multipart/related; type=\"application/dicom\"; boundary={BOUNDARY}")
}

/// `body` posted to STOW-RS by radiology's operator.
fn stow(server: &Server, body: &Path) -> Answer {
    curl_upload(
        server,
        "/v1/dicomweb/studies",
        RAD_OP,
        &stow_type(),
        body,
        &[],
    )
}

#[test]
fn a_stow_body_of_300_mb_is_streamed_to_disk() {
    let server = server("100Gi");
    let before = existing(&server);
    let dir = tempdir();
    let (instance, uid) = ct_instance(dir.path());
    let last = uid.rsplit('.').next().unwrap();
    assert!(last.len() >= 4, "room to number the instances in {uid}");
    // 150 distinct instances of ~2 MiB: over 300 MB.
    let parts = 150;
    let body = dir.path().join("stow.body");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&body).unwrap());
        for i in 0..parts {
            let numbered = format!("{}{}", &uid[..uid.len() - 3], 100 + i);
            let part = replace_all(&instance, uid.as_bytes(), numbered.as_bytes());
            write!(f, "--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").unwrap();
            f.write_all(&part).unwrap();
            f.write_all(b"\r\n").unwrap();
        }
        write!(f, "--{BOUNDARY}--\r\n").unwrap();
    }
    let size = std::fs::metadata(&body).unwrap().len();
    assert!(size > 300_000_000, "{size}");
    let rss_before = peak_rss(&server);
    let answer = stow(&server, &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = answer.json();
    assert_eq!(
        v["00081199"]["Value"].as_array().map(Vec::len),
        Some(parts),
        "every instance stored"
    );
    assert_eq!(
        v["00090010"]["Value"][0], "WARD 1.0",
        "Ward's private block"
    );
    let payload = v["00091001"]["Value"][0].as_str().unwrap();
    let stored = server.state.join("payloads").join(payload);
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), parts);
    let sample =
        std::fs::read(stored.join(format!("{}{}.dcm", &uid[..uid.len() - 3], 100 + 7))).unwrap();
    assert_eq!(sample.len(), instance.len(), "an instance stored whole");
    let rise = peak_rss(&server).saturating_sub(rss_before);
    eprintln!("STOW-RS of {size} bytes: peak RSS rose by {rise} bytes");
    assert!(
        rise < RSS_HEADROOM,
        "a {size} byte STOW-RS body raised the server's peak RSS by {rise} bytes"
    );
    assert_intact(&server, &before);
}

#[test]
fn a_boundary_flood_is_refused_with_the_limit() {
    let server = server("100Gi");
    let before = existing(&server);
    let listed = server.ok("GET", "/v1/payloads", RAD_OP, None);
    let dir = tempdir();
    let body = dir.path().join("flood.body");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&body).unwrap());
        // Three million empty parts, each a delimiter and a blank line.
        let part = format!("--{BOUNDARY}\r\n\r\n\r\n");
        for _ in 0..3_000_000 {
            f.write_all(part.as_bytes()).unwrap();
        }
        write!(f, "--{BOUNDARY}--\r\n").unwrap();
    }
    let rss_before = peak_rss(&server);
    let answer = stow(&server, &body);
    let v = answer.json();
    assert_eq!(
        (answer.status, v["error"]["code"].as_str()),
        (413, Some("too-many-parts")),
        "{}",
        answer.body
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("10000") && message.contains("max-stow-parts"),
        "{message}"
    );
    let rise = peak_rss(&server).saturating_sub(rss_before);
    eprintln!("boundary flood: peak RSS rose by {rise} bytes");
    assert!(
        rise < RSS_HEADROOM,
        "the flood raised peak RSS by {rise} bytes"
    );
    assert_eq!(server.ok("GET", "/v1/payloads", RAD_OP, None), listed);
    assert_intact(&server, &before);
}

#[test]
fn colliding_dataset_names_from_two_tenants_are_both_stored() {
    let server = server("100Gi");
    let before = existing(&server);
    let dir = tempdir();
    // Tenant `a` + dataset `b-c` and tenant `a-b` + dataset `c` once shared a staging name.
    let mut uploads = Vec::new();
    for (token, name, seed) in [(A_OP, "b-c", 1u8), (AB_OP, "c", 2u8)] {
        let content = dir.path().join(format!("content-{seed}"));
        std::fs::create_dir(&content).unwrap();
        pattern_file(&content.join("weights.bin"), 24 << 20, seed);
        let archive = dir.path().join(format!("dataset-{seed}.tar"));
        tar_of(&content, &archive);
        uploads.push((token, name, content, archive));
    }
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = uploads
            .iter()
            .map(|(token, name, _, archive)| {
                let server = &server;
                // Slowed so that both are in flight together.
                s.spawn(move || {
                    curl_upload(
                        server,
                        &format!("/v1/datasets/{name}"),
                        token,
                        "application/x-tar",
                        archive,
                        &["--limit-rate", "8M"],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((token, name, content, _), answer) in uploads.iter().zip(&answers) {
        assert_eq!(answer.status, 201, "{name}: {}", answer.body);
        let tenant = if *token == A_OP { "a" } else { "a-b" };
        let stored = server
            .state
            .join("datasets")
            .join(tenant)
            .join(name)
            .join("weights.bin");
        assert_eq!(
            sha256_file(&stored),
            sha256_file(&content.join("weights.bin")),
            "tenant {tenant}'s dataset {name} stored intact"
        );
        let listed = server.ok("GET", "/v1/datasets", token, None);
        assert_eq!(listed["items"][0]["bytes"], 24 << 20, "{listed}");
    }
    assert_intact(&server, &before);
}

#[test]
fn an_upload_past_the_storage_quota_while_another_is_in_flight_is_refused() {
    let server = server("48Mi");
    let before = existing(&server);
    let dir = tempdir();
    let mut archives = Vec::new();
    for seed in [1u8, 2] {
        let content = dir.path().join(format!("content-{seed}"));
        std::fs::create_dir(&content).unwrap();
        pattern_file(&content.join("series.bin"), 32 << 20, seed);
        let archive = dir.path().join(format!("payload-{seed}.tar"));
        tar_of(&content, &archive);
        archives.push(archive);
    }
    // Each fits the quota alone; together they do not.
    let uploads = server.state.join("uploads");
    let (slow, fast) = std::thread::scope(|s| {
        let server = &server;
        let first = &archives[0];
        let slow = s.spawn(move || {
            curl_upload(
                server,
                "/v1/payloads",
                Q_OP,
                "application/x-tar",
                first,
                &["--limit-rate", "4M"],
            )
        });
        // The first is in flight once its file is being written.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let written: u64 = std::fs::read_dir(&uploads)
                .unwrap()
                .flatten()
                .map(|e| crate::service_uploads::tree_bytes(&e.path()))
                .sum();
            if written > 1 << 20 {
                break;
            }
            assert!(Instant::now() < deadline, "the first upload did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let fast = curl_upload(
            server,
            "/v1/payloads",
            Q_OP,
            "application/x-tar",
            &archives[1],
            &[],
        );
        (slow.join().unwrap(), fast)
    });
    let codes = [slow.status, fast.status];
    assert!(
        codes == [201, 413] || codes == [413, 201],
        "one stored, one refused: {} / {}",
        slow.body,
        fast.body
    );
    let refused = if slow.status == 413 { &slow } else { &fast };
    let v = refused.json();
    assert_eq!(v["error"]["code"], "over-quota", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("50331648"),
        "the message names the quota: {v}"
    );
    let listed = server.ok("GET", "/v1/payloads", Q_OP, None);
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "only the stored one is listed: {listed}");
    assert_eq!(items[0]["bytes"], 32 << 20);
    let on_disk: Vec<_> = std::fs::read_dir(server.state.join("payloads"))
        .unwrap()
        .collect();
    assert_eq!(on_disk.len(), 2, "the stored one and the existing one");
    assert_intact(&server, &before);
}

/// Bytes of the regular files under `path` (or of `path` itself).
pub fn tree_bytes(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

#[test]
fn a_viewer_downloading_archives_in_parallel_costs_bounded_memory() {
    let server = server("100Gi");
    let before = existing(&server);
    let dir = tempdir();
    let content = dir.path().join("content");
    std::fs::create_dir(&content).unwrap();
    pattern_file(&content.join("volume.bin"), 100 << 20, 9);
    let archive = dir.path().join("payload.tar");
    tar_of(&content, &archive);
    let answer = curl_upload(
        &server,
        "/v1/payloads",
        RAD_OP,
        "application/x-tar",
        &archive,
        &[],
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let id = answer.json()["id"].as_str().unwrap().to_string();
    let rss_before = peak_rss(&server);
    let downloads: Vec<PathBuf> = (0..8)
        .map(|i| dir.path().join(format!("download-{i}.tar")))
        .collect();
    let children: Vec<_> = downloads
        .iter()
        .map(|out| {
            Command::new("curl")
                .args(["-sS", "--fail", "-o"])
                .arg(out)
                .args(["-H", &format!("Authorization: Bearer {RAD_VIEW}")])
                .arg(format!("{}/v1/payloads/{id}/archive", server.url))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a download failed");
    }
    let rise = peak_rss(&server).saturating_sub(rss_before);
    eprintln!("8 parallel downloads of a 100 MiB payload: peak RSS rose by {rise} bytes");
    assert!(
        rise < RSS_HEADROOM,
        "8 downloads raised peak RSS by {rise} bytes"
    );
    let first = sha256_file(&downloads[0]);
    let original = sha256_file(&content.join("volume.bin"));
    for d in &downloads {
        assert_eq!(sha256_file(d), first, "{} differs", d.display());
    }
    let back = dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&downloads[0])
        .arg("-C")
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256_file(&back.join("volume.bin")), original, "complete");
    assert_intact(&server, &before);
}

#[test]
fn what_a_job_leaves_counts_in_its_tenants_storage() {
    let mut server = server("40Mi");
    let before = existing(&server);
    let dir = tempdir();
    // Logs up to the log budget (8 MiB), then succeeds.
    server.pipeline(Q_OP, "filler", "flood", "");
    let input = small_payload();
    let payload = server.payload(Q_OP, input.path());
    let job = server.job(Q_OP, "filler", &payload, "normal", true);
    let done = server.wait(Q_OP, &job);
    assert_eq!(done["state"], "succeeded", "{done}");
    let left = tree_bytes(&server.state.join("jobs").join(&job));
    assert!(left >= 4 << 20, "the job left its logs: {left} bytes");
    // Fits the quota only if what the job left were not counted.
    let upload = |server: &Server, size: u64, seed: u8| {
        let content = dir.path().join(format!("content-{seed}"));
        std::fs::create_dir(&content).unwrap();
        pattern_file(&content.join("data.bin"), size as usize, seed);
        let archive = dir.path().join(format!("payload-{seed}.tar"));
        tar_of(&content, &archive);
        curl_upload(
            server,
            "/v1/payloads",
            Q_OP,
            "application/x-tar",
            &archive,
            &[],
        )
    };
    let too_much = (40 << 20) - left + (2 << 20);
    let refused = upload(&server, too_much, 1);
    assert_eq!(
        (refused.status, refused.json()["error"]["code"].as_str()),
        (413, Some("over-quota")),
        "{}",
        refused.body
    );
    // Still counted after a restart.
    server.kill();
    server.launch();
    let refused = upload(&server, too_much, 2);
    assert_eq!(refused.status, 413, "{}", refused.body);
    let fits = upload(&server, (40 << 20) - left - (2 << 20), 3);
    assert_eq!(fits.status, 201, "{}", fits.body);
    assert_intact(&server, &before);
}

#[test]
fn dicom_received_past_the_storage_quota_is_refused_as_it_arrives() {
    use crate::dicom_scp::{free_port, wait_for_port};
    let dir = tempdir();
    let dicom_port = free_port();
    std::fs::write(
        dir.path().join("adapter.yaml"),
        format!(
            "listen: 127.0.0.1:{dicom_port}
storage: dicom
routes:
  - ae-title: Q_STORE
    tenant: q
    pipelines: [none]
"
        ),
    )
    .unwrap();
    let server = server_in(dir, "300Ki", "dicom: adapter.yaml");
    wait_for_port(dicom_port);
    let before = existing(&server);
    // Nine small instances that fit the quota and one (512 KiB of pixels) that does not.
    let series = tempdir();
    for (sub, slices, size) in [("small", 9, 32), ("huge", 1, 512)] {
        let dir = series.path().join(sub);
        std::fs::create_dir(&dir).unwrap();
        ward::sample::ct_series::write_ct_series(
            &dir,
            &ward::sample::ct_series::CtSeriesOptions {
                slices,
                size,
                seed: sub.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let send = |dir: &Path| {
        Command::new(dcmtk_tool("storescu"))
            .args([
                "-aec",
                "Q_STORE",
                "-v",
                "+sd",
                "+r",
                "127.0.0.1",
                &dicom_port.to_string(),
            ])
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = send(series.path());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("OutOfResources"),
        "storescu was told the instances are refused: {said}"
    );
    // What was kept (the instances acknowledged as stored) is within the quota.
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored: u64 = loop {
        let listed = server.ok("GET", "/v1/payloads", Q_OP, None);
        let items = listed["items"].as_array().unwrap().clone();
        if let Some(p) = items.first() {
            assert_eq!((items.len(), p["files"].as_u64()), (1, Some(9)), "{listed}");
            break p["bytes"].as_u64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no payload for the received series"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(stored <= 300 << 10, "stored {stored} bytes past the quota");
    assert!(stored > 0, "the instances that fit were kept");
    // What the refused instance had reserved is given back: another small one still fits.
    let one = tempdir();
    ward::sample::ct_series::write_ct_series(
        one.path(),
        &ward::sample::ct_series::CtSeriesOptions {
            slices: 1,
            size: 32,
            seed: "a-later-series".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let out = send(one.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.ok("GET", "/v1/payloads", Q_OP, None)["items"]
        .as_array()
        .unwrap()
        .len()
        < 2
    {
        assert!(Instant::now() < deadline, "the small series was not kept");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_intact(&server, &before);
}

/// A STOW-RS part of a few hundred bytes whose pixel data declares 4 GiB is refused with
/// 0xC000 naming the element, and the server reserves nothing like what it declares.
#[test]
fn a_stow_part_declaring_gigabytes_is_refused_without_reserving_them() {
    let server = server("100Gi");
    let before = existing(&server);
    let dir = tempdir();
    let (instance, _) = ct_instance(dir.path());
    let at = memchr::memmem::find(&instance, &[0xE0, 0x7F, 0x10, 0x00]).expect("pixel data");
    // Explicit VR (OW/OB, two reserved bytes, then a 4-byte length) or implicit (the length
    // follows the tag).
    let length_at = if matches!(&instance[at + 4..at + 6], b"OW" | b"OB") {
        at + 8
    } else {
        at + 4
    };
    let mut part = instance[..length_at].to_vec();
    part.extend([0xF0, 0xFF, 0xFF, 0xFF]);
    part.extend([0u8; 100]);
    let body = dir.path().join("declares.body");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&body).unwrap();
        write!(f, "--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n").unwrap();
        f.write_all(&part).unwrap();
        write!(f, "\r\n--{BOUNDARY}--\r\n").unwrap();
    }
    let rss_before = peak_rss(&server);
    let answer = stow(&server, &body);
    let v = answer.json();
    let failed = &v["00081198"]["Value"];
    assert_eq!(
        failed[0]["00081197"]["Value"][0].as_u64(),
        Some(0xC000),
        "{} {}",
        answer.status,
        answer.body
    );
    assert!(
        v["00081199"]["Value"].as_array().is_none_or(Vec::is_empty),
        "nothing stored: {}",
        answer.body
    );
    let rise = peak_rss(&server).saturating_sub(rss_before);
    assert!(
        rise < RSS_HEADROOM,
        "a part declaring 4 GiB raised the server's peak RSS by {rise} bytes"
    );
    assert_intact(&server, &before);
}
