//! `ward job ...`: jobs on the service, from creating one to waiting for its end.

use super::wait::{wait, WaitArgs};
use super::{field, items, print_json, show, show_created, utc, Client, Connection, Format};
use crate::cli::EXIT_FAILED;
use serde_json::{json, Value};
use std::path::PathBuf;

/// What a new job runs and how.
#[derive(clap::Args)]
pub struct JobSpec {
    /// The pipeline: its id, NAME (the latest version) or NAME:VERSION.
    #[arg(long)]
    pipeline: String,
    /// lower, normal, higher or immediate (default normal; the tenant may cap it).
    #[arg(long)]
    priority: Option<String>,
    /// Runs the job at most this many times while it fails (1-10; default 1: no retry).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10))]
    max_attempts: Option<u32>,
}

#[derive(clap::Subcommand)]
pub enum JobCommand {
    /// Creates a job on payloads already uploaded.
    Create {
        #[command(flatten)]
        spec: JobSpec,
        /// A payload id; give it several times for a job on several payloads (its stages
        /// see one directory per payload, named by its id).
        #[arg(long = "payload", value_name = "ID", required = true)]
        payloads: Vec<String>,
        /// Queue it at once (otherwise it waits for `ward job start`).
        #[arg(long)]
        start: bool,
        /// Print only the new job's id (for scripts).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Uploads directories as payloads and queues a job on them at once.
    Submit {
        #[command(flatten)]
        spec: JobSpec,
        /// The payload directories (one payload each).
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Then wait for the job's end, as `ward job wait` does (and exit as it does).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        waiting: WaitArgs,
        #[command(flatten)]
        format: Format,
    },
    /// Lists jobs, oldest first (every page).
    List {
        /// Only jobs in this state: created, queued, running, succeeded, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Shows one job, with its stages once it ran; exits 1 when it failed.
    #[command(alias = "describe")]
    Show {
        /// The job's id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Waits for a job to end, printing a line as each of its stages changes state; exits
    /// 0 when it succeeded, 1 when it failed, was cancelled or outlived --timeout.
    Wait {
        /// The job's id.
        id: String,
        #[command(flatten)]
        waiting: WaitArgs,
        #[command(flatten)]
        format: Format,
    },
    /// Prints a job's logs (every stage's, or one stage's).
    Logs {
        /// The job's id.
        id: String,
        /// Only this stage's log.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Queues a created, failed or cancelled job.
    Start {
        /// The job's id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
    /// Cancels a job that has not ended.
    Cancel {
        /// The job's id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
}

/// The body of `POST /v1/jobs`.
fn create_body(spec: &JobSpec, payloads: &[String], start: bool) -> Value {
    let mut body = json!({"pipeline": spec.pipeline, "start": start});
    match payloads {
        [one] => body["payload"] = json!(one),
        several => body["payloads"] = json!(several),
    }
    if let Some(p) = &spec.priority {
        body["priority"] = json!(p);
    }
    if let Some(n) = spec.max_attempts {
        body["max_attempts"] = json!(n);
    }
    body
}

/// One line for a job in a list.
fn job_line(job: &Value) {
    out!(
        "{}  {:<10} {:<9} attempts {}/{}",
        field(job, "id"),
        field(job, "state"),
        field(job, "priority"),
        job["attempts"],
        job["max_attempts"]
    );
}

/// A job as `ward job show` prints it.
fn job_text(job: &Value) {
    job_line(job);
    out!(
        "  pipeline {}  payload {}",
        job["pipeline_id"],
        field(job, "payload_id")
    );
    out!(
        "  created {}  started {}  finished {}",
        utc(&job["created"]),
        utc(&job["started"]),
        utc(&job["finished"])
    );
    if let Some(failure) = job["failure"].as_str() {
        out!("  failure: {}", crate::cli::printable(failure));
    }
    for stage in job["summary"]["stages"].as_array().into_iter().flatten() {
        let time = stage["duration_s"]
            .as_f64()
            .map(|d| format!("{d:.2}s"))
            .unwrap_or_default();
        out!(
            "  stage {:<16} {:<10} {:>8}",
            field(stage, "name"),
            field(stage, "status"),
            time
        );
    }
}

pub fn job(c: &Connection, cmd: JobCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        JobCommand::Create {
            spec,
            payloads,
            start,
            quiet,
            format,
        } => {
            let job = client.json(
                "POST",
                "/v1/jobs",
                Some(create_body(&spec, &payloads, start)),
            )?;
            show_created(format, quiet, &job, |j| {
                out!("job {} {}", field(j, "id"), field(j, "state"))
            });
        }
        JobCommand::Submit {
            spec,
            dirs,
            wait: and_wait,
            waiting,
            format,
        } => {
            let mut payloads = Vec::new();
            for dir in &dirs {
                let p = client.upload_dir("/v1/payloads", dir)?;
                payloads.push(field(&p, "id").to_string());
            }
            let job = client.json(
                "POST",
                "/v1/jobs",
                Some(create_body(&spec, &payloads, true)),
            )?;
            let id = field(&job, "id").to_string();
            if and_wait {
                return wait(&client, &id, &waiting, format);
            }
            show(format, &job, |j| {
                out!(
                    "job {} {} on payloads {}",
                    field(j, "id"),
                    field(j, "state"),
                    payloads.join(", ")
                )
            });
        }
        JobCommand::List { state, format } => {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut path = "/v1/jobs?page_size=1000".to_string();
                if let Some(s) = &state {
                    path.push_str(&format!("&state={s}"));
                }
                if let Some(t) = &token {
                    path.push_str(&format!("&page_token={t}"));
                }
                let page = client.json("GET", &path, None)?;
                all.extend(items(&page).cloned());
                match page["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
            if format.json {
                print_json(&json!({ "items": all }));
            } else {
                all.iter().for_each(job_line);
            }
        }
        JobCommand::Show { id, format } => {
            let job = client.json("GET", &format!("/v1/jobs/{id}"), None)?;
            show(format, &job, job_text);
            if job["state"] == "failed" {
                return Ok(EXIT_FAILED);
            }
        }
        JobCommand::Wait {
            id,
            waiting,
            format,
        } => return wait(&client, &id, &waiting, format),
        JobCommand::Logs { id, stage } => {
            let path = match stage {
                Some(s) => format!("/v1/jobs/{id}/logs?stage={s}"),
                None => format!("/v1/jobs/{id}/logs"),
            };
            // A stage wrote these lines: escape sequences must not reach the terminal.
            out!(
                "{}",
                crate::cli::printable(&String::from_utf8_lossy(&client.bytes(&path)?))
            );
        }
        JobCommand::Start { id, format } => {
            let job = client.json("POST", &format!("/v1/jobs/{id}/start"), None)?;
            show(format, &job, |j| {
                out!("job {} {}", field(j, "id"), field(j, "state"))
            });
        }
        JobCommand::Cancel { id, format } => {
            let job = client.json("POST", &format!("/v1/jobs/{id}/cancel"), None)?;
            show(format, &job, |j| {
                out!("job {} {}", field(j, "id"), field(j, "state"))
            });
        }
    }
    Ok(0)
}
