//! `ward job wait JOB`: polls the job until it ends and says as it goes what its stages do.
//!
//! The job's status (`GET /v1/jobs/{id}`) carries the summary of its latest attempt, which
//! the runner rewrites at every stage transition; a line is printed for each stage whose
//! state differs from the previous poll, and for each change of the job's own state.

use super::{field, print_json, Client, Format};
use crate::cli::{printable, EXIT_FAILED};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct WaitArgs {
    /// Give up waiting after this long (e.g. 90s, 10m), exiting 1; the job goes on.
    #[arg(long, value_parser = ward::pipeline::quantity::parse_duration)]
    timeout: Option<Duration>,
    /// How often to ask the service for the job's state.
    #[arg(long, default_value = "500ms", value_parser = ward::pipeline::quantity::parse_duration)]
    interval: Duration,
}

/// Where the job stood at the last poll.
#[derive(Default)]
struct Seen {
    state: String,
    attempts: i64,
    stages: BTreeMap<String, String>,
}

/// Waits for job `id`; the exit code is 0 when it succeeded, 1 when it failed, was
/// cancelled or outlived the timeout. Progress goes to stdout, or to stderr with `--json`
/// (whose stdout is the job as it ended).
pub fn wait(client: &Client, id: &str, args: &WaitArgs, format: Format) -> anyhow::Result<i32> {
    let say = |line: String| {
        if format.json {
            eprintln!("{line}");
        } else {
            out!("{line}");
        }
    };
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut seen = Seen::default();
    loop {
        let job = client.json("GET", &format!("/v1/jobs/{id}"), None)?;
        report(id, &job, &mut seen, &say);
        let state = field(&job, "state");
        if let Some(code) = ended(state) {
            if let Some(why) = job["failure"].as_str().filter(|_| code != 0) {
                say(format!("job {id}: {}", printable(why)));
            }
            if format.json {
                print_json(&job);
            }
            return Ok(code);
        }
        if deadline.is_some_and(|d| Instant::now() + args.interval > d) {
            say(format!(
                "job {id}: still {state} after {:?}; not waiting longer",
                args.timeout.unwrap_or_default()
            ));
            if format.json {
                print_json(&job);
            }
            return Ok(EXIT_FAILED);
        }
        std::thread::sleep(args.interval);
    }
}

/// The exit code of a job in `state`, once it has ended.
fn ended(state: &str) -> Option<i32> {
    match state {
        "succeeded" => Some(0),
        "failed" | "cancelled" => Some(EXIT_FAILED),
        _ => None,
    }
}

/// Says what changed since `seen`, and remembers it.
fn report(id: &str, job: &Value, seen: &mut Seen, say: &impl Fn(String)) {
    let state = field(job, "state");
    let attempts = job["attempts"].as_i64().unwrap_or(0);
    if attempts != seen.attempts && attempts > 0 {
        say(format!(
            "job {id}: attempt {attempts} of {}",
            job["max_attempts"]
        ));
        // A new attempt starts its stages afresh.
        seen.stages.clear();
        seen.attempts = attempts;
    }
    // A job that ended says so after its stages (they ended first), one that goes on
    // before them.
    let changed = state != seen.state;
    if changed && state == "created" {
        say(format!(
            "job {id}: created (it runs once started: ward job start {id})"
        ));
    } else if changed && ended(state).is_none() {
        say(format!("job {id}: {state}"));
    }
    for stage in job["summary"]["stages"].as_array().into_iter().flatten() {
        let name = field(stage, "name");
        let status = field(stage, "status");
        if status == "pending" || seen.stages.get(name).map(String::as_str) == Some(status) {
            continue;
        }
        let mut line = format!("  stage {name}: {status}");
        if let Some(d) = stage["duration_s"].as_f64() {
            line.push_str(&format!(" in {d:.2} s"));
        }
        if let Some(why) = stage["reason"]["message"].as_str() {
            line.push_str(&format!(": {}", printable(why)));
        }
        say(line);
        seen.stages.insert(name.to_string(), status.to_string());
    }
    if changed && ended(state).is_some() {
        say(format!("job {id}: {state}"));
    }
    seen.state = state.to_string();
}
