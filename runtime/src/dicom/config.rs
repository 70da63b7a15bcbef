//! The adapter's configuration file: where it listens, which called AE titles route to which
//! pipelines (and who may call them), how instances become payloads, and where results go.
//!
//! ```yaml
//! listen: 127.0.0.1:11112
//! storage: /var/lib/ward/dicom       # incoming/, payloads/, jobs/
//! max-associations: 16
//! max-pending-connections: 32       # connections that have not yet requested an association
//! max-connections-per-address: 8    # pending and associated, from one source address
//! request-timeout: 10s              # to send the whole A-ASSOCIATE-RQ after connecting
//! max-pdu: 1Mi
//! export-retry-for: 24h              # how long undeliverable results are retried
//! routes:
//!   - ae-title: CT_SEG                # the called AE title
//!     pipelines: [../examples/ct-segmentation/pipeline.yaml]
//!     allow-calling: [MODALITY1]      # calling AE titles allowed (default: any)
//!     allow-ips: [127.0.0.1]          # source addresses allowed (default: any)
//!     assemble: association           # or: study (after `quiet` with no new instance)
//!     quiet: 5s
//!     when: {modality: CT}            # optional conditions on DICOM attributes
//!     export: [{output: dicom-writer.seg, destination: pacs}]
//! destinations:
//!   - {name: pacs, ae-title: PACS, host: 127.0.0.1, port: 104}
//! ```

use crate::pipeline::quantity::{parse_bytes, parse_duration};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    listen: String,
    storage: String,
    #[serde(default)]
    ae_title: Option<String>,
    #[serde(default)]
    max_associations: Option<usize>,
    #[serde(default)]
    max_pending_connections: Option<usize>,
    #[serde(default)]
    max_connections_per_address: Option<usize>,
    #[serde(default)]
    request_timeout: Option<String>,
    #[serde(default)]
    max_pdu: Option<String>,
    #[serde(default)]
    max_instance: Option<String>,
    #[serde(default)]
    export_retry_for: Option<String>,
    routes: Vec<RouteFile>,
    #[serde(default)]
    destinations: Vec<DestinationFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RouteFile {
    ae_title: String,
    /// Under `ward serve`: the tenant that owns this AE title (its payloads and jobs).
    #[serde(default)]
    tenant: Option<String>,
    /// None: the route only stores.
    #[serde(default)]
    pipelines: Vec<String>,
    #[serde(default)]
    allow_calling: Vec<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    #[serde(default)]
    assemble: Option<String>,
    #[serde(default)]
    quiet: Option<String>,
    #[serde(default)]
    when: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    export: Vec<ExportFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ExportFile {
    output: String,
    destination: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DestinationFile {
    name: String,
    ae_title: String,
    host: String,
    port: u16,
}

/// How received instances become a payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Assembly {
    /// Everything one association sent (Clara's behaviour).
    Association,
    /// Each study, once no instance of it arrived for `quiet` (Orthanc's stable study).
    Study { quiet: Duration },
}

/// A condition on a DICOM attribute the payload's instances must meet.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The attribute (a keyword such as `Modality`) equals the value.
    Equals { keyword: String, value: String },
    /// The attribute is a number below the value.
    Below { keyword: String, value: f64 },
}

#[derive(Debug, Clone)]
pub struct Export {
    /// The stage and its output: `dicom-writer.seg`.
    pub stage: String,
    pub output: String,
    pub destination: usize,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub ae_title: String,
    /// Under `ward serve`: the tenant owning this AE title.
    pub tenant: Option<String>,
    /// The pipelines as written: under `ward serve`, names of the tenant's stored pipelines.
    pub pipeline_names: Vec<String>,
    /// The pipelines as files, relative to the configuration (standalone adapter).
    pub pipelines: Vec<PathBuf>,
    pub allow_calling: Vec<String>,
    pub allow_ips: Vec<std::net::IpAddr>,
    pub assembly: Assembly,
    pub conditions: Vec<Condition>,
    pub exports: Vec<Export>,
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

/// The adapter's validated configuration.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub listen: String,
    pub storage: PathBuf,
    /// Ward's own AE title when it calls others.
    pub ae_title: String,
    pub max_associations: usize,
    /// Connections that have not yet sent their whole A-ASSOCIATE-RQ.
    pub max_pending_connections: usize,
    /// Connections (pending and associated) from one source address.
    pub max_connections_per_address: usize,
    /// How long a new connection may take to send its whole A-ASSOCIATE-RQ.
    pub request_timeout: Duration,
    pub max_pdu: u32,
    /// The largest instance accepted; a bigger one is refused (out of resources).
    pub max_instance: u64,
    /// How long a result that cannot be delivered is retried.
    pub export_retry_for: Duration,
    pub routes: Vec<Route>,
    pub destinations: Vec<Destination>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the DICOM configuration: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Concurrent associations unless `max-associations` says otherwise.
pub const DEFAULT_MAX_ASSOCIATIONS: usize = 16;
/// Connections waiting to associate unless `max-pending-connections` says otherwise.
pub const DEFAULT_MAX_PENDING_CONNECTIONS: usize = 32;
/// Connections from one address unless `max-connections-per-address` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// Time to request an association unless `request-timeout` says otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The connection limits are counts of threads and sockets: past this they mean nothing.
const MAX_CONNECTION_LIMIT: usize = 4096;
pub const DEFAULT_MAX_PDU: u32 = 1 << 20;
pub const DEFAULT_MAX_INSTANCE: u64 = 2 << 30;
pub const DEFAULT_EXPORT_RETRY_FOR: Duration = Duration::from_secs(24 * 3600);

/// Checks an AE title: 1-16 characters of the default repertoire, not only spaces.
pub fn check_ae_title(ae: &str) -> Result<(), String> {
    if ae.is_empty() || ae.len() > 16 || ae.trim().is_empty() {
        return Err(format!(
            "AE title '{ae}' must be 1-16 characters, not only spaces"
        ));
    }
    if ae
        .chars()
        .any(|c| c == '\\' || c.is_control() || !c.is_ascii())
    {
        return Err(format!(
            "AE title '{ae}' may not hold backslashes, control or non-ASCII characters"
        ));
    }
    Ok(())
}

impl AdapterConfig {
    /// Reads and validates the configuration at `path`; relative paths in it are resolved
    /// against its directory.
    pub fn load(path: &Path) -> Result<AdapterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: ConfigFile =
            marked_yaml::from_yaml(0, &text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let destinations: Vec<Destination> = file
            .destinations
            .into_iter()
            .map(|d| {
                if let Err(why) = check_ae_title(&d.ae_title) {
                    problems.push(format!("destination '{}': {why}", d.name));
                }
                Destination {
                    name: d.name,
                    ae_title: d.ae_title,
                    host: d.host,
                    port: d.port,
                }
            })
            .collect();
        let mut routes = Vec::new();
        for r in file.routes {
            let at = format!("route '{}'", r.ae_title);
            if let Err(why) = check_ae_title(&r.ae_title) {
                problems.push(format!("{at}: {why}"));
            }
            if routes.iter().any(|o: &Route| o.ae_title == r.ae_title) {
                problems.push(format!("{at}: the AE title is routed twice"));
            }
            let assembly = match (r.assemble.as_deref().unwrap_or("association"), &r.quiet) {
                ("association", None) => Assembly::Association,
                ("association", Some(_)) => {
                    problems.push(format!("{at}: `quiet` applies to `assemble: study` only"));
                    Assembly::Association
                }
                ("study", quiet) => match quiet.as_deref().map(parse_duration) {
                    None => Assembly::Study {
                        quiet: Duration::from_secs(5),
                    },
                    Some(Ok(d)) => Assembly::Study { quiet: d },
                    Some(Err(why)) => {
                        problems.push(format!("{at}: quiet {why}"));
                        Assembly::Association
                    }
                },
                (other, _) => {
                    problems.push(format!(
                        "{at}: assemble '{other}' must be `association` or `study`"
                    ));
                    Assembly::Association
                }
            };
            let mut conditions = Vec::new();
            for (key, value) in r.when.unwrap_or_default() {
                match key.strip_prefix("max-") {
                    Some(rest) => match value.parse::<f64>() {
                        Ok(v) => conditions.push(Condition::Below {
                            keyword: keyword_of(rest),
                            value: v,
                        }),
                        Err(_) => {
                            problems.push(format!("{at}: when {key}: '{value}' is not a number"))
                        }
                    },
                    None => conditions.push(Condition::Equals {
                        keyword: keyword_of(&key),
                        value,
                    }),
                }
            }
            for c in &conditions {
                let (Condition::Equals { keyword, .. } | Condition::Below { keyword, .. }) = c;
                use dicom_core::dictionary::DataDictionary as _;
                if dicom_dictionary_std::StandardDataDictionary
                    .by_name(keyword)
                    .is_none()
                {
                    problems.push(format!("{at}: when: '{keyword}' is not a DICOM attribute"));
                }
            }
            let mut exports = Vec::new();
            for e in r.export {
                let Some((stage, output)) = e.output.split_once('.') else {
                    problems.push(format!(
                        "{at}: export output '{}' must be `stage.output`",
                        e.output
                    ));
                    continue;
                };
                match destinations.iter().position(|d| d.name == e.destination) {
                    Some(destination) => exports.push(Export {
                        stage: stage.to_string(),
                        output: output.to_string(),
                        destination,
                    }),
                    None => problems.push(format!("{at}: unknown destination '{}'", e.destination)),
                }
            }
            let mut allow_ips = Vec::new();
            for ip in r.allow_ips {
                match ip.parse() {
                    Ok(a) => allow_ips.push(a),
                    Err(_) => problems.push(format!("{at}: '{ip}' is not an IP address")),
                }
            }
            routes.push(Route {
                ae_title: r.ae_title,
                tenant: r.tenant,
                pipelines: r.pipelines.iter().map(|p| base.join(p)).collect(),
                pipeline_names: r.pipelines,
                allow_calling: r.allow_calling,
                allow_ips,
                assembly,
                conditions,
                exports,
            });
        }
        let size = |field: &str, value: Option<String>, default: u64| match value {
            None => Ok(default),
            Some(v) => parse_bytes(&v).map_err(|why| format!("{field} {why}")),
        };
        let max_pdu = size("max-pdu", file.max_pdu, u64::from(DEFAULT_MAX_PDU))
            .and_then(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| (4096..=(16 << 20)).contains(v))
                    .ok_or_else(|| "max-pdu must be from 4Ki to 16Mi".to_string())
            })
            .unwrap_or_else(|why| {
                problems.push(why);
                DEFAULT_MAX_PDU
            });
        let max_instance = size("max-instance", file.max_instance, DEFAULT_MAX_INSTANCE)
            .unwrap_or_else(|why| {
                problems.push(why);
                DEFAULT_MAX_INSTANCE
            });
        let export_retry_for = match file.export_retry_for.as_deref().map(parse_duration) {
            None => DEFAULT_EXPORT_RETRY_FOR,
            Some(Ok(d)) => d,
            Some(Err(why)) => {
                problems.push(format!("export-retry-for {why}"));
                DEFAULT_EXPORT_RETRY_FOR
            }
        };
        let mut count = |field: &str, value: Option<usize>, default: usize| match value {
            None => default,
            Some(v) if (1..=MAX_CONNECTION_LIMIT).contains(&v) => v,
            Some(v) => {
                problems.push(format!(
                    "{field} {v} must be from 1 to {MAX_CONNECTION_LIMIT}"
                ));
                default
            }
        };
        let max_associations = count(
            "max-associations",
            file.max_associations,
            DEFAULT_MAX_ASSOCIATIONS,
        );
        let max_pending_connections = count(
            "max-pending-connections",
            file.max_pending_connections,
            DEFAULT_MAX_PENDING_CONNECTIONS,
        );
        let max_connections_per_address = count(
            "max-connections-per-address",
            file.max_connections_per_address,
            DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        );
        let request_timeout = match file.request_timeout.as_deref().map(parse_duration) {
            None => DEFAULT_REQUEST_TIMEOUT,
            Some(Ok(d)) if d >= Duration::from_millis(100) && d <= Duration::from_secs(300) => d,
            Some(Ok(_)) => {
                problems.push("request-timeout must be from 100ms to 5m".into());
                DEFAULT_REQUEST_TIMEOUT
            }
            Some(Err(why)) => {
                problems.push(format!("request-timeout {why}"));
                DEFAULT_REQUEST_TIMEOUT
            }
        };
        let ae_title = file.ae_title.unwrap_or_else(|| "WARD".into());
        if let Err(why) = check_ae_title(&ae_title) {
            problems.push(why);
        }
        if !problems.is_empty() {
            return Err(invalid(problems.join("; ")));
        }
        Ok(AdapterConfig {
            listen: file.listen,
            storage: base.join(file.storage),
            ae_title,
            max_associations,
            max_pending_connections,
            max_connections_per_address,
            request_timeout,
            max_pdu,
            max_instance,
            export_retry_for,
            routes,
            destinations,
        })
    }

    /// The SCP's connection limits.
    pub fn connection_limits(&self) -> super::slots::ConnectionLimits {
        super::slots::ConnectionLimits {
            max_associations: self.max_associations,
            max_pending: self.max_pending_connections,
            max_per_address: self.max_connections_per_address,
            request_timeout: self.request_timeout,
        }
    }

    /// The route of called AE title `ae`.
    pub fn route(&self, ae: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.ae_title == ae.trim())
    }
}

/// `slice-thickness` → `SliceThickness`.
fn keyword_of(key: &str) -> String {
    key.split('-')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Result<AdapterConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dicom.yaml");
        std::fs::write(
            &path,
            format!("listen: 127.0.0.1:11112\nstorage: s\n{extra}routes:\n  - ae-title: CT\n"),
        )
        .unwrap();
        AdapterConfig::load(&path)
    }

    #[test]
    fn connection_limits_have_defaults_and_are_validated() {
        let limits = load("").unwrap().connection_limits();
        assert_eq!(
            limits,
            crate::dicom::slots::ConnectionLimits {
                max_associations: DEFAULT_MAX_ASSOCIATIONS,
                max_pending: DEFAULT_MAX_PENDING_CONNECTIONS,
                max_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
            }
        );
        let set = load(
            "max-pending-connections: 4\nmax-connections-per-address: 2\nrequest-timeout: 3s\n",
        )
        .unwrap();
        assert_eq!(
            (
                set.max_pending_connections,
                set.max_connections_per_address,
                set.request_timeout
            ),
            (4, 2, Duration::from_secs(3))
        );
        for (bad, says) in [
            (
                "max-pending-connections: 0\n",
                "max-pending-connections 0 must be from 1 to 4096",
            ),
            (
                "max-connections-per-address: 100000\n",
                "max-connections-per-address 100000",
            ),
            ("max-associations: 0\n", "max-associations 0"),
            (
                "request-timeout: 1h\n",
                "request-timeout must be from 100ms to 5m",
            ),
            ("request-timeout: soon\n", "request-timeout"),
        ] {
            let err = load(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
