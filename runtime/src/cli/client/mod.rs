//! The job service's client commands, over its REST API (`WARD_URL`, default
//! http://127.0.0.1:8080; the token in `WARD_TOKEN`): pipelines, payloads, datasets, jobs,
//! results, the registry components pipelines pin, the audit trail. An `https://` service
//! is checked against the public web roots, or against the PEM certificates in
//! `--cacert`/`WARD_CA` alone (a hospital's own certificate authority).
//!
//! Every command that prints data prints it for people by default and as JSON with `--json`.
//! A refusal of the service (4xx) means the input was wrong and exits 2; an error once the
//! request is under way (no connection, the connection lost, a 5xx answer, an answer that
//! cannot be read) is a [`ServiceFailed`] and exits 3.

pub mod audit;
mod components;
mod jobs;
mod stores;
mod wait;

pub use components::{component, ComponentCommand};
pub use jobs::{job, JobCommand};
pub use stores::{
    dataset, payload, pipeline, results, DatasetCommand, PayloadCommand, PipelineCommand,
    ResultsCommand,
};

use anyhow::{bail, Context};
use serde_json::Value;
use std::io::Read as _;
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

/// How a command prints its data.
#[derive(clap::Args, Clone, Copy)]
pub struct Format {
    /// Print the answer as JSON (the machine form) instead of text for people.
    #[arg(long)]
    pub json: bool,
}

/// The service failed once the request was under way: it could not be reached, the
/// connection broke, it answered 5xx, or its answer could not be read. Exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("the service failed: {0}")]
pub struct ServiceFailed(pub String);

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

    /// Turns an HTTP error into the service's own message: a 4xx refusal is the caller's
    /// input, a 5xx or a transport error is the service failing.
    fn answer(r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
        match r {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => {
                let body: Value = r.into_json().unwrap_or(Value::Null);
                let message = body["error"]["message"].as_str().unwrap_or("");
                let error = body["error"]["code"].as_str().unwrap_or("error");
                if code >= 500 {
                    Err(ServiceFailed(format!("{code} {error}: {message}")).into())
                } else {
                    bail!("{code} {error}: {message}")
                }
            }
            Err(ureq::Error::Transport(t)) => {
                use ureq::ErrorKind::*;
                match t.kind() {
                    // The address itself is wrong: nothing was sent.
                    InvalidUrl | UnknownScheme | InsecureRequestHttpsOnly | InvalidProxyUrl => {
                        bail!("{t}")
                    }
                    _ => Err(ServiceFailed(t.to_string()).into()),
                }
            }
        }
    }

    /// The JSON body of an answer; one that cannot be read is the service failing.
    fn body(r: ureq::Response) -> anyhow::Result<Value> {
        let url = r.get_url().to_string();
        r.into_json::<Value>()
            .map_err(|e| ServiceFailed(format!("reading the answer of {url}: {e}")).into())
    }

    fn json(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let req = self.request(method, path);
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        Self::body(Self::answer(r)?)
    }

    fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        Self::answer(self.request("GET", path).call())?
            .into_reader()
            .read_to_end(&mut out)
            .map_err(|e| ServiceFailed(format!("reading {path}: {e}")))?;
        Ok(out)
    }

    /// Sends a tar archive of `dir` to `path`, with a spinner while it goes.
    fn upload_dir(&self, path: &str, dir: &Path) -> anyhow::Result<Value> {
        let tar = ward::service::archive::pack(dir)
            .with_context(|| format!("packing {}", dir.display()))?;
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("uploading {} ({} bytes)", dir.display(), tar.len()));
        let r = Self::answer(
            self.request("POST", path)
                .set("Content-Type", "application/x-tar")
                .send_bytes(&tar),
        );
        bar.finish_and_clear();
        Self::body(r?)
    }
}

/// Prints `v` as JSON with `--json`, or as `text` renders it.
fn show(format: Format, v: &Value, text: impl FnOnce(&Value)) {
    if format.json {
        print_json(v);
    } else {
        text(v);
    }
}

/// A created object as `show` prints it, or with `quiet` its id alone (for scripts:
/// `id=$(ward payload upload -q DIR)`).
fn show_created(format: Format, quiet: bool, v: &Value, text: impl FnOnce(&Value)) {
    match v["id"].as_str() {
        Some(id) if quiet => out!("{id}"),
        _ => show(format, v, text),
    }
}

fn print_json(v: &Value) {
    out!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// The items of a list answer.
fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v["items"].as_array().into_iter().flatten()
}

/// A string field, or "-" where there is none.
fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("-")
}

/// Seconds since the Unix epoch as a UTC time, `2026-01-31 14:05:09`.
fn utc(v: &Value) -> String {
    let Some(seconds) = v.as_f64() else {
        return "-".into();
    };
    let seconds = seconds.floor() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day number counted from 1970-01-01, by eras of 400
/// years (146 097 days), each starting on 1 March so that the leap day ends a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn times_are_shown_as_utc_dates() {
        assert_eq!(super::utc(&json!(0.0)), "1970-01-01 00:00:00");
        assert_eq!(super::utc(&json!(951_782_400.5)), "2000-02-29 00:00:00");
        assert_eq!(super::utc(&json!(1_767_225_599)), "2025-12-31 23:59:59");
        assert_eq!(super::utc(&json!(null)), "-");
    }
}
