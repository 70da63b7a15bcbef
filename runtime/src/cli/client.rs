//! The job service's client commands, over its REST API (`WARD_URL`, default
//! http://127.0.0.1:8080; the token in `WARD_TOKEN`): pipelines, payloads, jobs, results.
//! An `https://` service is checked against the public web roots, or against the PEM
//! certificates in `--cacert`/`WARD_CA` alone (a hospital's own certificate authority).

use super::EXIT_FAILED;
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Connection {
    /// The service's address.
    #[arg(
        long,
        env = "WARD_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// The API token (better given in WARD_TOKEN than on the command line).
    #[arg(long, env = "WARD_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// PEM file of the certificate authorities to trust for an https:// service, in place
    /// of the public web roots.
    #[arg(long, env = "WARD_CA", global = true)]
    cacert: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum PipelineCommand {
    /// Stores a pipeline file as a new version.
    Create { file: PathBuf },
    /// Lists pipelines.
    List,
}

#[derive(clap::Subcommand)]
pub enum PayloadCommand {
    /// Uploads a directory as a payload.
    Upload {
        dir: PathBuf,
        /// Print only the new payload's id (for scripts: `id=$(ward payload upload -q DIR)`).
        #[arg(long, short)]
        quiet: bool,
    },
    /// Downloads a payload into a directory.
    Download { id: String, dir: PathBuf },
    /// Lists payloads.
    List,
}

#[derive(clap::Subcommand)]
pub enum JobCommand {
    /// Creates a job.
    Create {
        #[arg(long)]
        pipeline: String,
        #[arg(long)]
        payload: String,
        /// lower, normal, higher or immediate.
        #[arg(long)]
        priority: Option<String>,
        /// Queue it at once.
        #[arg(long)]
        start: bool,
        /// Print only the new job's id.
        #[arg(long, short)]
        quiet: bool,
    },
    List {
        #[arg(long)]
        state: Option<String>,
    },
    Describe {
        id: String,
    },
    Logs {
        id: String,
        #[arg(long)]
        stage: Option<String>,
    },
    Start {
        id: String,
    },
    Cancel {
        id: String,
    },
}

#[derive(clap::Subcommand)]
pub enum ResultsCommand {
    /// Downloads a job's results (JOB or JOB:STAGE) into a directory.
    Download { job: String, dir: PathBuf },
}

struct Client {
    url: String,
    token: String,
    agent: ureq::Agent,
}

/// An HTTP agent that trusts `cacert`'s certificates only, or the public web roots.
fn agent(cacert: Option<&Path>) -> anyhow::Result<ureq::Agent> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let builder = ureq::AgentBuilder::new();
    let Some(cacert) = cacert else {
        return Ok(builder.build());
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cacert)
        .with_context(|| format!("{}: cannot read certificates", cacert.display()))?
    {
        let cert = cert.with_context(|| format!("{}: not a PEM certificate", cacert.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{}: not a usable CA certificate", cacert.display()))?;
    }
    if roots.is_empty() {
        bail!("{}: holds no certificate", cacert.display());
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(builder.tls_config(std::sync::Arc::new(config)).build())
}

impl Client {
    fn new(c: &Connection) -> anyhow::Result<Client> {
        let Some(token) = c.token.clone() else {
            bail!("no token: set WARD_TOKEN (or --token)");
        };
        Ok(Client {
            url: c.url.trim_end_matches('/').to_string(),
            token,
            agent: agent(c.cacert.as_deref())?,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{path}", self.url))
            .set("Authorization", &format!("Bearer {}", self.token))
    }

    /// Turns an HTTP error into the service's own message.
    fn answer(r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
        match r {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => {
                let body: Value = r.into_json().unwrap_or(Value::Null);
                let message = body["error"]["message"].as_str().unwrap_or("");
                let error = body["error"]["code"].as_str().unwrap_or("error");
                bail!("{code} {error}: {message}")
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let req = self.request(method, path);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        Ok(Self::answer(r)?.into_json()?)
    }

    fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        Self::answer(self.request("GET", path).call())?
            .into_reader()
            .read_to_end(&mut out)?;
        Ok(out)
    }
}

use std::io::Read as _;

fn print(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// A created object: all of it, or with `quiet` its id alone.
fn print_created(v: &Value, quiet: bool) {
    match v["id"].as_str() {
        Some(id) if quiet => out!("{id}"),
        _ => print(v),
    }
}

fn unpack_into(tar: &[u8], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    ward::service::archive::unpack(tar, dir, u64::MAX)
        .with_context(|| format!("unpacking into {}", dir.display()))?;
    Ok(())
}

pub fn pipeline(c: &Connection, cmd: PipelineCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        PipelineCommand::Create { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let r = Client::answer(client.request("POST", "/v1/pipelines").send_string(&text))?;
            print(&r.into_json()?);
        }
        PipelineCommand::List => print(&client.json("GET", "/v1/pipelines", None)?),
    }
    Ok(0)
}

pub fn payload(c: &Connection, cmd: PayloadCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        PayloadCommand::Upload { dir, quiet } => {
            let tar = ward::service::archive::pack(&dir)
                .with_context(|| format!("packing {}", dir.display()))?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_message(format!("uploading {} bytes", tar.len()));
            let r = Client::answer(
                client
                    .request("POST", "/v1/payloads")
                    .set("Content-Type", "application/x-tar")
                    .send_bytes(&tar),
            );
            bar.finish_and_clear();
            print_created(&r?.into_json()?, quiet);
        }
        PayloadCommand::Download { id, dir } => {
            unpack_into(&client.bytes(&format!("/v1/payloads/{id}/archive"))?, &dir)?;
            out!("payload {id} in {}", dir.display());
        }
        PayloadCommand::List => print(&client.json("GET", "/v1/payloads", None)?),
    }
    Ok(0)
}

pub fn job(c: &Connection, cmd: JobCommand) -> anyhow::Result<i32> {
    let client = Client::new(c)?;
    match cmd {
        JobCommand::Create {
            pipeline,
            payload,
            priority,
            start,
            quiet,
        } => {
            let mut body =
                serde_json::json!({"pipeline": pipeline, "payload": payload, "start": start});
            if let Some(p) = priority {
                body["priority"] = Value::String(p);
            }
            print_created(&client.json("POST", "/v1/jobs", Some(body))?, quiet);
        }
        JobCommand::List { state } => {
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
                for job in page["items"].as_array().into_iter().flatten() {
                    out!(
                        "{}  {:<10} {:<9} attempts {}",
                        job["id"].as_str().unwrap_or(""),
                        job["state"].as_str().unwrap_or(""),
                        job["priority"].as_str().unwrap_or(""),
                        job["attempts"]
                    );
                }
                match page["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
        }
        JobCommand::Describe { id } => {
            let job = client.json("GET", &format!("/v1/jobs/{id}"), None)?;
            print(&job);
            if job["state"] == "failed" {
                return Ok(EXIT_FAILED);
            }
        }
        JobCommand::Logs { id, stage } => {
            let path = match stage {
                Some(s) => format!("/v1/jobs/{id}/logs?stage={s}"),
                None => format!("/v1/jobs/{id}/logs"),
            };
            // A stage wrote these lines: escape sequences must not reach the terminal.
            out!(
                "{}",
                super::printable(&String::from_utf8_lossy(&client.bytes(&path)?))
            );
        }
        JobCommand::Start { id } => {
            print(&client.json("POST", &format!("/v1/jobs/{id}/start"), None)?)
        }
        JobCommand::Cancel { id } => {
            print(&client.json("POST", &format!("/v1/jobs/{id}/cancel"), None)?)
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
