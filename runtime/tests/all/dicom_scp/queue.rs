//! The standalone adapter's job queue, through the real `ward dicom listen` and DCMTK's
//! storescu: at most `max-jobs` jobs at once, and the queue on disk survives the listener
//! being killed, with each job run to completion exactly once.

use super::process::{entries, Listening};
use super::{config_text, store_series};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use ward::sample::ct_series::{write_ct_series, CtSeriesOptions};

/// A route CT_SEG whose one stage sleeps `sleep_ms`, with `max-jobs: 1`.
fn one_job_at_a_time(storage: &Path, port: u16, sleep_ms: u32) -> String {
    let pipeline = misbehave_pipeline(
        storage.parent().unwrap(),
        &format!("sleep\n      sleep-ms: '{sleep_ms}'"),
        "",
    );
    config_text(storage, port, &pipeline, "") + "max-jobs: 1\n"
}

/// `n` small studies of their own, each in a directory.
fn studies(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let study = dir.join(format!("study-{i}"));
            write_ct_series(
                &study,
                &CtSeriesOptions {
                    slices: 2,
                    size: 16,
                    seed: format!("queued-{i}"),
                    ..CtSeriesOptions::default()
                },
            )
            .unwrap();
            study
        })
        .collect()
}

/// The job's summary, once it exists and parses.
fn summary(job: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(job.join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits until `n` jobs have succeeded; their summaries.
fn wait_for_succeeded(l: &Listening, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done: Vec<serde_json::Value> = l
            .jobs()
            .iter()
            .filter_map(|j| summary(j))
            .filter(|s| s["status"] == "succeeded")
            .collect();
        if done.len() >= n {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} jobs succeeded:\n{}",
            done.len(),
            super::process::plain_log(&l.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With `max-jobs: 1`, three studies sent one after another run one after another: no job's
/// run overlaps another's. A run is taken from its start in `summary.json` to the time that
/// file was last written (when the job finished): `started_unix + duration_s` is not used, as
/// the duration is timed from a moment a little before `started_unix` is taken.
#[test]
fn with_max_jobs_one_no_two_jobs_run_at_once() {
    let l = Listening::start(|storage, port| one_job_at_a_time(storage, port, 1000));
    let sources = tempdir();
    for study in studies(sources.path(), 3) {
        store_series(l.port, &study);
    }
    wait_for_succeeded(&l, 3);
    let mut runs: Vec<(f64, f64)> = l
        .jobs()
        .iter()
        .map(|job| {
            let file = job.join("summary.json");
            let start = read_json(&file)["started_unix"].as_f64().unwrap();
            let end = std::fs::metadata(&file)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            (start, end)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(runs.len(), 3);
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "a job started at {} while another ran until {}",
            pair[1].0,
            pair[0].1
        );
    }
    assert!(entries(&l.storage.join("queue")).is_empty());
}

/// Killed with one job done, one running and one waiting, the listener started again runs
/// the interrupted and the waiting jobs to completion and leaves the finished one alone:
/// three payloads, three jobs, each succeeded once.
#[test]
fn a_restart_resumes_the_queue_and_runs_each_job_once() {
    let mut l = Listening::start(|storage, port| one_job_at_a_time(storage, port, 3000));
    let sources = tempdir();
    for study in studies(sources.path(), 3) {
        store_series(l.port, &study);
    }
    // One job done and the next running: the third must still be waiting.
    let deadline = Instant::now() + Duration::from_secs(180);
    let (done, running) = loop {
        let summaries: Vec<(PathBuf, serde_json::Value)> = l
            .jobs()
            .into_iter()
            .filter_map(|j| summary(&j).map(|s| (j, s)))
            .collect();
        let done = summaries.iter().find(|(_, s)| s["status"] == "succeeded");
        let running = summaries.iter().find(|(_, s)| s["status"] == "running");
        if let (Some(done), Some(running)) = (done, running) {
            break (done.clone(), running.0.clone());
        }
        assert!(Instant::now() < deadline, "{summaries:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    l.kill();
    assert_eq!(
        l.queued().len(),
        2,
        "the running and the waiting job are queued: {:?}",
        l.queued()
    );
    l.start_again(2);

    let after = wait_for_succeeded(&l, 3);
    assert_eq!(l.jobs().len(), 3, "one job per payload: {:?}", l.jobs());
    assert_eq!(l.payloads().len(), 3);
    let mut payloads: Vec<String> = after
        .iter()
        .map(|s| s["payload"]["path"].as_str().unwrap().to_string())
        .collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 3, "each payload ran once: {payloads:?}");
    let finished_before = summary(&done.0).unwrap();
    assert_eq!(
        finished_before["started_unix"], done.1["started_unix"],
        "the job finished before the kill was not run again"
    );
    let interrupted = running.file_name().unwrap().to_str().unwrap();
    l.wait_for_log(&["job interrupted by a restart", interrupted]);
    assert!(
        l.queued().is_empty(),
        "the queue is empty: {:?}",
        l.queued()
    );
}
