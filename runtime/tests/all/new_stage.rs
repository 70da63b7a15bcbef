//! A vendor's first stage: `ward new stage` writes a crate that builds for wasm32-wasip2
//! outside the repository, from the SDK copy it carries, offline; the pipeline it writes
//! validates and runs on its test payload, and the component passes `ward conformance`. The
//! SDK carries the contract byte for byte and is versioned like it.

use crate::support::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use ward::jobs::{new_job_id, run_job, JobObserver, JobRequest, JobStatus};

/// The files of `dir`, by relative path, with their bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                found.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

#[test]
fn the_sdk_carries_the_contract_byte_for_byte() {
    let root = repo_root();
    let contract = files_of(&root.join("wit"));
    let copy = files_of(&root.join("guests/sdk/wit"));
    let names =
        |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&copy),
        names(&contract),
        "guests/sdk/wit/ holds the files of wit/"
    );
    for ((name, theirs), (_, ours)) in contract.iter().zip(&copy) {
        assert!(
            theirs == ours,
            "guests/sdk/wit/{name} differs from wit/{name}: copy wit/ into guests/sdk/wit/"
        );
    }

    // The SDK's version is the contract's package version.
    let wit = std::fs::read_to_string(root.join("wit/stage.wit")).unwrap();
    let contract_version = wit
        .lines()
        .find_map(|l| l.strip_prefix("package ward:stage@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/stage.wit declares package ward:stage@VERSION");
    let manifest = std::fs::read_to_string(root.join("guests/sdk/Cargo.toml")).unwrap();
    let sdk_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("guests/sdk/Cargo.toml has a version");
    assert_eq!(
        sdk_version, contract_version,
        "guests/sdk/Cargo.toml's version follows the contract's (wit/stage.wit)"
    );
}

#[test]
fn bad_names_and_occupied_directories_are_refused() {
    let dir = tempdir();
    for (name, why) in [
        (
            "2stage",
            "'2stage' starts with '2'; a stage name starts with a lowercase letter",
        ),
        ("My-Stage", "'My-Stage' starts with 'M'"),
        ("hello.stage", "'hello.stage' has '.' at character 6"),
        ("fn", "'fn' is a Rust keyword"),
        (
            "ward-stage-sdk",
            "reserved (the SDK every stage depends on)",
        ),
    ] {
        let target = dir.path().join("crate");
        let out = run_ward(&["new", "stage", name, "--dir", target.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{name}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{name}: {}", out.stderr);
        assert!(!target.exists(), "{name}: nothing is written");
    }

    let occupied = dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("mine.txt"), "keep me").unwrap();
    let out = run_ward(&["new", "stage", "hello", "--dir", occupied.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{} already exists and is not empty (it holds 'mine.txt')",
            occupied.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        files_of(&occupied),
        [("mine.txt".to_string(), b"keep me".to_vec())]
    );

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run_ward(&["new", "stage", "hello", "--dir", file.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("already exists and is not a directory"),
        "{}",
        out.stderr
    );

    // Only what the test made is left: no half-written crate, no staging directory.
    let left: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, BTreeSet::from(["a-file".into(), "occupied".into()]));
}

#[test]
fn a_new_directory_is_made_whole_with_its_parents() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let target = dir.path().join("vendors/acme/lung-nodules");
    let out = run_ward(&[
        "new",
        "stage",
        "lung-nodules",
        "--dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names: Vec<String> = files_of(&target).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"src/lib.rs".to_string()), "{names:?}");
    assert!(names.contains(&"vendor/ward-stage-sdk/wit/stage.wit".to_string()));
    let pipeline = std::fs::read_to_string(target.join("pipeline.yaml")).unwrap();
    assert!(pipeline.contains("path: target/wasm32-wasip2/release/lung_nodules.wasm"));
    // Renamed into place: nothing else is left beside it, and it is an ordinary directory
    // (made under the umask like any other), not a private temporary one.
    let beside: Vec<_> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["lung-nodules"]);
    let ordinary = dir.path().join("ordinary");
    std::fs::create_dir(&ordinary).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&target), mode(&ordinary));
}

/// The (name, version) pairs a Cargo.lock locks.
fn locked(lock: &Path) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(lock).unwrap();
    let mut pairs = BTreeSet::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = \"") {
            name = Some(n.trim_end_matches('"').to_string());
        } else if let Some(v) = line.strip_prefix("version = \"") {
            if let Some(n) = name.take() {
                pairs.insert((n, v.trim_end_matches('"').to_string()));
            }
        }
    }
    pairs
}

#[derive(Default)]
struct Progress(Mutex<Vec<(f32, String)>>);

impl JobObserver for Progress {
    fn stage_progress(&self, _stage: &str, fraction: f32, message: &str) {
        self.0.lock().unwrap().push((fraction, message.to_string()));
    }
}

#[test]
fn a_new_stage_builds_outside_the_repository_runs_and_passes_conformance() {
    let outside = tempdir();
    // An existing empty directory is fine.
    let dir = outside.path().join("first-stage");
    std::fs::create_dir(&dir).unwrap();
    let out = run_ward(&[
        "new",
        "stage",
        "first-stage",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("ward-stage-sdk 0.2.0 for ward:stage@0.2.0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("ward conformance target/wasm32-wasip2/release/first_stage.wasm"),
        "{}",
        out.stdout
    );
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/lib.rs",
        "pipeline.yaml",
        "README.md",
        "test-payload/notes.txt",
        "test-payload/scans/preamble.dcm",
        "vendor/ward-stage-sdk/Cargo.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} is written");
    }
    // The SDK copy is the SDK, file for file.
    assert_eq!(
        files_of(&dir.join("vendor/ward-stage-sdk")),
        files_of(&repo_root().join("guests/sdk"))
    );
    let written_lock = locked(&dir.join("Cargo.lock"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fmt = Command::new(&cargo)
        .args(["fmt", "--check"])
        .current_dir(&dir)
        .output()
        .expect("cargo fmt runs");
    assert!(
        fmt.status.success(),
        "the stage is written as rustfmt writes it:\n{}",
        String::from_utf8_lossy(&fmt.stdout)
    );

    // Built as a vendor would, in the crate's directory, offline: every crate comes from the
    // cargo cache that Ward's stages were built from. The target directory is the guests'
    // so that dependencies already built there are not built again.
    let target_dir = repo_root().join("guests/target");
    let started = Instant::now();
    let build = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let build_s = started.elapsed().as_secs_f64();
    assert!(
        build.status.success(),
        "the new stage builds:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    eprintln!("new stage: cargo build --release --target wasm32-wasip2 took {build_s:.1} s");
    // Cargo resolved nothing anew: every version it locked is one the written lockfile
    // locked (it may drop entries that only Ward's own stages' features needed).
    let after = locked(&dir.join("Cargo.lock"));
    assert!(
        after.is_subset(&written_lock),
        "new versions: {:?}",
        after.difference(&written_lock)
    );
    assert!(after.contains(&("first-stage".into(), "0.1.0".into())));

    // The pipeline names the component where a build in the crate puts it.
    let built = target_dir.join("wasm32-wasip2/release/first_stage.wasm");
    let component = dir.join("target/wasm32-wasip2/release/first_stage.wasm");
    std::fs::create_dir_all(component.parent().unwrap()).unwrap();
    std::fs::copy(&built, &component).unwrap();

    let pipeline = dir.join("pipeline.yaml");
    let out = run_ward(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("valid (1 operators)"), "{}", out.stdout);

    let job = dir.join("job");
    let out = ward_run(
        &pipeline,
        &dir.join("test-payload"),
        &["--results", job.to_str().unwrap(), "--no-progress"],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let notes = std::fs::read(dir.join("test-payload/notes.txt")).unwrap();
    let inventory =
        std::fs::read_to_string(job.join("results/first-stage/results/inventory.txt")).unwrap();
    assert_eq!(
        inventory,
        format!(
            "# 2 files (1 DICOM), {} bytes\n{}\tother\tnotes.txt\n132\tdicom\tscans/preamble.dcm\n",
            notes.len() + 132,
            notes.len()
        )
    );
    let log = std::fs::read_to_string(job.join("logs/first-stage.log")).unwrap();
    assert!(log.contains("INFO  2 files in the payload"), "{log}");
    // The README shows what the run writes.
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains(&inventory),
        "README.md shows the inventory:\n{readme}"
    );

    // Its progress messages, as the host receives them.
    let progress = Arc::new(Progress::default());
    let request = JobRequest {
        pipeline: ward::pipeline::load(&pipeline).expect("the pipeline loads"),
        payload: dir.join("test-payload"),
        job_dir: outside.path().join("job-in-process"),
        job_id: new_job_id(),
        tenant: "test".into(),
        parameters: Default::default(),
        datasets: Default::default(),
        cpu_slots: 1,
        cancel: None,
        preempted: None,
    };
    let summary = run_job(engine(), &request, progress.clone()).expect("the job runs");
    assert_eq!(summary.status, JobStatus::Succeeded);
    assert_eq!(
        *progress.0.lock().unwrap(),
        [
            (0.5, "read notes.txt".to_string()),
            (1.0, "read scans/preamble.dcm".to_string()),
            (1.0, "inventory written".to_string()),
        ]
    );

    let out = run_ward(&["conformance", component.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("verdict: PASS (10 checks)"),
        "{}",
        out.stdout
    );
}
