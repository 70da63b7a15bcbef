//! `ward conformance`: the verdict a vendor gets before publishing a component. It checks
//! that the component targets `ward:stage/stage` and imports only what Ward grants, then runs
//! it through the real runtime on sample payloads — a generated CT series, an empty payload
//! and a payload without DICOM — twice each: it must not trap or hit a limit on any of them
//! (a stage-error is a fine answer to a bad payload; on the CT series only invalid-input is),
//! must give byte-identical results on both runs, and must leave the payload as it was.

mod payloads;
mod report;

pub use report::{Check, Report, RunFigures};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ward::engine::Engine;
use ward::jobs::{new_job_id, run_job, FailureKind, JobRequest, JobSummary, NoObserver};
use ward::pipeline::quantity::format_bytes;
use ward::volumes::tree_digest;

/// What the component is run with.
pub struct ConformanceOptions {
    pub memory_bytes: u64,
    pub timeout: Duration,
    /// What it may leave in its results.
    pub disk_bytes: u64,
    pub files: u64,
    /// Parameters every run gets (as `ward run --param`).
    pub parameters: BTreeMap<String, String>,
    /// Where payloads and job directories are written.
    pub scratch: PathBuf,
}

/// Checks `component` and returns the report; `Err` only when the host itself fails.
pub fn check_component(
    engine: &Engine,
    component: &Path,
    options: &ConformanceOptions,
) -> anyhow::Result<Report> {
    let mut report = Report::new(component);
    let loaded = match engine.load_component(component, None) {
        Ok(c) => c,
        Err(e) => {
            report.push(Check::fail("world", format!("{e}")));
            return Ok(report);
        }
    };
    report.digest = Some(loaded.digest.clone());
    report.push(Check::pass(
        "world",
        "targets ward:stage/stage of a compatible version and imports only what Ward grants"
            .to_string(),
    ));

    let pipeline = write_pipeline(component, options)?;
    for (name, payload) in payloads::write_all(&options.scratch)? {
        let first = run_once(engine, &pipeline, &payload, options, &format!("{name}-1"))?;
        let second = run_once(engine, &pipeline, &payload, options, &format!("{name}-2"))?;
        report.push(ending_check(&name, sample_is_valid(&name), &first.summary));
        report.push(determinism_check(&name, &first, &second)?);
        report.push(payload_check(&name, &payload, &first.summary)?);
    }
    Ok(report)
}

/// A pipeline of the component alone: the payload at /payload, its results at /results.
fn write_pipeline(component: &Path, options: &ConformanceOptions) -> anyhow::Result<PathBuf> {
    let component = std::path::absolute(component)?;
    let yaml = format!(
        "api-version: 0.1
name: conformance
operators:
  - name: stage
    component: {{path: '{}'}}
    input: [{{path: /payload}}]
    output: [{{name: results, path: /results}}]
    requests: {{memory: '{}', timeout: '{}ms', disk: '{}', files: '{}'}}
",
        component.display().to_string().replace('\'', "''"),
        options.memory_bytes,
        options.timeout.as_millis(),
        options.disk_bytes,
        options.files
    );
    let path = options.scratch.join("pipeline.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// One run of the component: its summary and where its results are.
struct Run {
    summary: JobSummary,
    results: PathBuf,
}

fn run_once(
    engine: &Engine,
    pipeline: &Path,
    payload: &Path,
    options: &ConformanceOptions,
    job: &str,
) -> anyhow::Result<Run> {
    let job_dir = options.scratch.join("jobs").join(job);
    let request = JobRequest {
        pipeline: ward::pipeline::load(pipeline)?,
        payload: payload.to_path_buf(),
        job_dir: job_dir.clone(),
        job_id: new_job_id(),
        tenant: "conformance".into(),
        parameters: options.parameters.clone(),
        datasets: BTreeMap::new(),
        cpu_slots: 1,
        cancel: None,
        preempted: None,
    };
    let summary = run_job(engine, &request, Arc::new(NoObserver))?;
    Ok(Run {
        summary,
        results: job_dir.join("results/stage/results"),
    })
}

/// Whether a sample payload is valid input for an imaging stage (the CT series is).
fn sample_is_valid(name: &str) -> bool {
    name == "ct-series"
}

/// How the stage ended: succeeding or a stage-error passes (on the valid payload, only
/// invalid-input); a trap or a limit fails.
fn ending_check(payload: &str, valid_payload: bool, run: &JobSummary) -> Check {
    let stage = &run.stages[0];
    let figures = RunFigures {
        seconds: stage.duration_s.unwrap_or_default(),
        memory_peak_bytes: stage.memory_peak_bytes.unwrap_or_default(),
    };
    let measured = format!(
        "{:.2} s, peak memory {}",
        figures.seconds,
        format_bytes(figures.memory_peak_bytes)
    );
    let check = match &stage.reason {
        None => Check::pass(
            format!("{payload}: ends"),
            format!("succeeded in {measured}"),
        ),
        // On a valid payload only "this is not the input I need" is an acceptable answer.
        Some(r) if r.kind == FailureKind::StageError && valid_payload => Check::fail(
            format!("{payload}: ends"),
            format!("failed on a valid payload: {}", first_line(&r.message)),
        ),
        Some(r) if matches!(r.kind, FailureKind::InvalidInput | FailureKind::StageError) => {
            Check::pass(
                format!("{payload}: ends"),
                format!(
                    "answered with a stage-error in {measured}: {}",
                    first_line(&r.message)
                ),
            )
        }
        Some(r) => Check::fail(
            format!("{payload}: ends"),
            format!("{}: {}", kind_name(r.kind), first_line(&r.message)),
        ),
    };
    check.with_figures(figures)
}

/// Both runs wrote the same files with the same bytes.
fn determinism_check(payload: &str, first: &Run, second: &Run) -> anyhow::Result<Check> {
    let name = format!("{payload}: deterministic");
    if first.summary.stages[0].status != second.summary.stages[0].status {
        return Ok(Check::fail(
            name,
            "the two runs ended differently".to_string(),
        ));
    }
    let (a, b) = (&first.results, &second.results);
    let differing = differing_files(a, b)?;
    Ok(if differing.is_empty() {
        let files = if a.is_dir() { tree_digest(a)?.files } else { 0 };
        Check::pass(
            name,
            format!("two runs wrote the same {files} file(s), byte for byte"),
        )
    } else {
        Check::fail(
            name,
            format!(
                "files that differ between two runs: {}",
                differing.join(", ")
            ),
        )
    })
}

fn payload_check(payload: &str, dir: &Path, run: &JobSummary) -> anyhow::Result<Check> {
    let now = tree_digest(dir)?;
    let name = format!("{payload}: payload untouched");
    Ok(if now == run.payload.before {
        Check::pass(name, "the payload is as it was".to_string())
    } else {
        Check::fail(name, "the payload changed".to_string())
    })
}

/// Relative paths of files whose bytes differ, or that exist under only one of `a` and `b`.
fn differing_files(a: &Path, b: &Path) -> anyhow::Result<Vec<String>> {
    let files = |root: &Path| -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let mut out = BTreeMap::new();
        if root.is_dir() {
            collect(root, root, &mut out)?;
        }
        Ok(out)
    };
    let (fa, fb) = (files(a)?, files(b)?);
    let mut names: Vec<&String> = fa.keys().chain(fb.keys()).collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .filter(|n| fa.get(*n) != fb.get(*n))
        .cloned()
        .collect())
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_symlink() {
            // A stage's symlink is compared by its target, never followed by the host.
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let target = std::fs::read_link(&path)?.to_string_lossy().into_owned();
            out.insert(rel, format!("symlink:{target}").into_bytes());
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let digest = ward::engine::sha256_digest(&std::fs::read(&path)?);
            out.insert(rel, digest.into_bytes());
        }
    }
    Ok(())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn kind_name(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}
