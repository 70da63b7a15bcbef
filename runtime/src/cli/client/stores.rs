//! What a tenant stores on the service: pipelines, payloads, datasets, and the results of
//! its jobs.

use super::{field, items, show, show_created, utc, Client, Connection, Format};
use anyhow::Context;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum PipelineCommand {
    /// Stores a pipeline file as a new version (validated by the service).
    Create {
        /// The pipeline file (YAML).
        file: PathBuf,
        #[command(flatten)]
        format: Format,
    },
    /// Lists pipelines, every version.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Shows one pipeline and its YAML.
    Show {
        /// A pipeline id, NAME (its latest version) or NAME:VERSION.
        reference: String,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(clap::Subcommand)]
pub enum PayloadCommand {
    /// Uploads a directory as a payload.
    Upload {
        /// The directory whose files become the payload.
        dir: PathBuf,
        /// Print only the new payload's id (for scripts).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        format: Format,
    },
    /// Downloads a payload into a directory.
    Download {
        /// The payload's id.
        id: String,
        /// The directory to unpack it into (created if missing).
        dir: PathBuf,
    },
    /// Lists payloads.
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Shows one payload: its state, files and bytes.
    Show {
        /// The payload's id.
        id: String,
        #[command(flatten)]
        format: Format,
    },
}

#[derive(clap::Subcommand)]
pub enum DatasetCommand {
    /// Uploads a directory as a named dataset (immutable once stored); pipelines mount it
    /// with `input: [{dataset: NAME}]`.
    Upload {
        /// The dataset's name: 1-63 characters of a-z, 0-9, '-', '_', '.'.
        name: String,
        /// The directory whose files become the dataset.
        dir: PathBuf,
        #[command(flatten)]
        format: Format,
    },
    /// Lists datasets.
    List {
        #[command(flatten)]
        format: Format,
    },
}

#[derive(clap::Subcommand)]
pub enum ResultsCommand {
    /// Downloads a job's results (JOB, or JOB:STAGE for one stage's) into a directory.
    Download {
        /// JOB or JOB:STAGE.
        job: String,
        /// The directory to unpack them into (created if missing).
        dir: PathBuf,
    },
}

fn pipeline_line(p: &Value) {
    out!(
        "{}:{}  id {}  created {}",
        field(p, "name"),
        p["version"],
        p["id"],
        utc(&p["created"])
    );
}

fn payload_line(p: &Value) {
    out!(
        "{}  {:<9} {:>6} files {:>12} bytes  created {}",
        field(p, "id"),
        field(p, "state"),
        // Padded as text: a JSON value's Display ignores widths.
        p["files"].to_string(),
        p["bytes"].to_string(),
        utc(&p["created"])
    );
}

pub fn pipeline(c: &Connection, cmd: PipelineCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        PipelineCommand::Create { file, format } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let r = Client::answer(client.request("POST", "/v1/pipelines").send_string(&text))?;
            show(format, &Client::body(r)?, |p| {
                out!(
                    "pipeline {}:{} stored (id {})",
                    field(p, "name"),
                    p["version"],
                    p["id"]
                )
            });
        }
        PipelineCommand::List { format } => {
            let list = client.json("GET", "/v1/pipelines", None)?;
            show(format, &list, |v| items(v).for_each(pipeline_line));
        }
        PipelineCommand::Show { reference, format } => {
            let p = client.json("GET", &format!("/v1/pipelines/{reference}"), None)?;
            show(format, &p, |p| {
                pipeline_line(p);
                out!("{}", field(p, "yaml").trim_end());
            });
        }
    }
    Ok(0)
}

pub fn payload(c: &Connection, cmd: PayloadCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        PayloadCommand::Upload { dir, quiet, format } => {
            let p = client.upload_dir("/v1/payloads", &dir)?;
            show_created(format, quiet, &p, |p| {
                out!(
                    "payload {}: {} files, {} bytes",
                    field(p, "id"),
                    p["files"],
                    p["bytes"]
                )
            });
        }
        PayloadCommand::Download { id, dir } => {
            unpack_into(&client.bytes(&format!("/v1/payloads/{id}/archive"))?, &dir)?;
            out!("payload {id} in {}", dir.display());
        }
        PayloadCommand::List { format } => {
            let list = client.json("GET", "/v1/payloads", None)?;
            show(format, &list, |v| items(v).for_each(payload_line));
        }
        PayloadCommand::Show { id, format } => {
            let p = client.json("GET", &format!("/v1/payloads/{id}"), None)?;
            show(format, &p, payload_line);
        }
    }
    Ok(0)
}

pub fn dataset(c: &Connection, cmd: DatasetCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    let line = |d: &Value| {
        out!(
            "{:<24} {:>6} files {:>12} bytes",
            field(d, "name"),
            d["files"].to_string(),
            d["bytes"].to_string()
        )
    };
    match cmd {
        DatasetCommand::Upload { name, dir, format } => {
            let d = client.upload_dir(&format!("/v1/datasets/{name}"), &dir)?;
            show(format, &d, line);
        }
        DatasetCommand::List { format } => {
            let list = client.json("GET", "/v1/datasets", None)?;
            show(format, &list, |v| items(v).for_each(line));
        }
    }
    Ok(0)
}

pub fn results(c: &Connection, cmd: ResultsCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    let ResultsCommand::Download { job, dir } = cmd;
    let path = match job.split_once(':') {
        Some((id, stage)) => format!("/v1/jobs/{id}/results?stage={stage}"),
        None => format!("/v1/jobs/{job}/results"),
    };
    unpack_into(&client.bytes(&path)?, &dir)?;
    out!("results of {job} in {}", dir.display());
    Ok(0)
}

fn unpack_into(tar: &[u8], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    ward::service::archive::unpack(tar, dir, u64::MAX)
        .with_context(|| format!("unpacking into {}", dir.display()))?;
    Ok(())
}
