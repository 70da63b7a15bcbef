//! The README's walk-through of the job service, run as written: the `sh` block after
//! `<!-- walk-through: serve -->` is taken from README.md and run by `sh -e`, command by
//! command (traced with `-x`), with the `ward` under test first on PATH. So the README and
//! this test cannot drift apart.
//!
//! It runs in a scratch directory laid out like the repository (the real `guests/`, the
//! example files under `examples/serve/`), so the service's state and the results stay out
//! of the working tree; the example's address 127.0.0.1:8080 is replaced by a free port,
//! in the configuration and in the block alike.

use crate::dicom_scp::free_port;
use crate::support::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARK: &str = "<!-- walk-through: serve -->";
const EXAMPLE_ADDRESS: &str = "127.0.0.1:8080";

/// The fenced `sh` block right after `MARK` in README.md.
pub fn walk_through() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once(MARK)
        .unwrap_or_else(|| panic!("README.md has no {MARK}"));
    let body = after
        .trim_start()
        .strip_prefix("```sh\n")
        .unwrap_or_else(|| panic!("{MARK} is not followed by a ```sh block"));
    let (block, _) = body
        .split_once("\n```")
        .expect("the walk-through block is closed");
    block.to_string()
}

/// Ends the walk-through's processes (the shell and the `ward serve` it left running).
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .status();
    }
}

#[test]
fn the_readme_walk_through_of_the_job_service_runs_as_written() {
    let block = walk_through();
    assert!(
        block.contains(EXAMPLE_ADDRESS),
        "the walk-through talks to the example's {EXAMPLE_ADDRESS}:\n{block}"
    );
    // Built before the block's own build step runs, which then finds nothing to do.
    components_dir();
    let scratch = tempdir();
    let root = scratch.path();
    let address = format!("127.0.0.1:{}", free_port());
    std::os::unix::fs::symlink(repo_root().join("guests"), root.join("guests")).unwrap();
    let examples = root.join("examples/serve");
    std::fs::create_dir_all(&examples).unwrap();
    for entry in std::fs::read_dir(repo_root().join("examples/serve")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        std::fs::write(
            examples.join(entry.file_name()),
            text.replace(EXAMPLE_ADDRESS, &address),
        )
        .unwrap();
    }
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ward"), bin.join("ward")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = root.join("walk-through.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut shell = Command::new("sh");
    shell
        .args(["-e", "-x", "-c", &block.replace(EXAMPLE_ADDRESS, &address)])
        .current_dir(root)
        .env("PATH", path)
        // As support::ward(): the compiled components are shared with the other tests.
        .env("WARD_CACHE_DIR", cache_dir())
        .env_remove("WARD_URL")
        .env_remove("WARD_TOKEN")
        .env_remove("WARD_LOG")
        // As support::components_dir() builds the guests.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .process_group(0);
    let mut child = shell.spawn().expect("sh runs");
    let _group = Group(child.id() as i32);
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the walk-through did not finish in 15 minutes:\n{}", said());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let said = said();
    assert!(status.success(), "the walk-through failed:\n{said}");
    assert!(
        said.contains("examples/serve/serve.yaml: valid"),
        "ward serve --check passed the example:\n{said}"
    );
    let results = root.join("ward-serve/results");
    check_results(&results, &said);
    assert!(
        root.join("ward-state/ward.db").is_file(),
        "the service kept its state where the example says"
    );
}

/// What the CT segmentation job left: statistics of the phantom's dense spheres, the
/// images, and a DICOM SEG that DCMTK reads, of the study `ward sample ct` wrote.
fn check_results(results: &Path, said: &str) {
    let stats = read_json(&results.join("segment/labels/stats.json"));
    let found = stats["components"]
        .as_array()
        .unwrap_or_else(|| panic!("stats.json lists components: {stats}\n{said}"));
    assert!(!found.is_empty(), "something was segmented: {stats}");
    for image in ["axial", "coronal", "sagittal", "mip"] {
        let png = std::fs::read(results.join(format!("render/images/{image}.png")))
            .unwrap_or_else(|e| panic!("{image}.png: {e}\n{said}"));
        assert!(png.starts_with(b"\x89PNG"), "{image}.png is a PNG");
    }
    // `ward sample ct` says "... (study UID)".
    let study = said
        .split_once("(study ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(uid, _)| uid.to_string())
        .unwrap_or_else(|| panic!("ward sample ct named its study:\n{said}"));
    let seg = results.join("dicom-writer/seg/dicom/segmentation.dcm");
    let dump = dcmdump(&["+P", "0008,0016", "+P", "0020,000d", seg.to_str().unwrap()]);
    assert_eq!(dump.code, 0, "dcmdump reads the SEG: {}", dump.stderr);
    assert!(
        dump.stdout.contains("=SegmentationStorage"),
        "{}",
        dump.stdout
    );
    assert!(
        dump.stdout.contains(&study),
        "the SEG is of the uploaded study {study}:\n{}",
        dump.stdout
    );
}
