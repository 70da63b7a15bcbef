//! The adapter's configuration file: where it listens, which called AE titles route to which
//! pipelines (and who may call them), how instances become payloads, and where results go.
//!
//! ```yaml
//! listen: 127.0.0.1:11112
//! storage: /var/lib/ward/dicom       # incoming/, payloads/, queue/, jobs/
//! max-associations: 16
//! max-pending-connections: 32       # connections that have not yet requested an association
//! max-connections-per-address: 8    # pending and associated, from one source address
//! request-timeout: 10s              # to send the whole A-ASSOCIATE-RQ after connecting
//! max-pdu: 1Mi
//! export-retry-for: 24h              # how long undeliverable results are retried
//! max-jobs: 2                       # jobs run at once (standalone; default: cores / CPU request)
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

use crate::pipeline::located_yaml::from_located_yaml;
use crate::pipeline::quantity::{parse_bytes, parse_duration};
use crate::pipeline::{Location, Problem};
use marked_yaml::Spanned;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ConfigFile {
    listen: Spanned<String>,
    storage: Spanned<String>,
    #[serde(default)]
    ae_title: Option<Spanned<String>>,
    #[serde(default)]
    max_associations: Option<Spanned<usize>>,
    #[serde(default)]
    max_pending_connections: Option<Spanned<usize>>,
    #[serde(default)]
    max_connections_per_address: Option<Spanned<usize>>,
    #[serde(default)]
    request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_pdu: Option<Spanned<String>>,
    #[serde(default)]
    max_instance: Option<Spanned<String>>,
    #[serde(default)]
    export_retry_for: Option<Spanned<String>>,
    #[serde(default)]
    max_jobs: Option<Spanned<usize>>,
    routes: Vec<RouteFile>,
    #[serde(default)]
    destinations: Vec<DestinationFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RouteFile {
    ae_title: Spanned<String>,
    /// Under `ward serve`: the tenant that owns this AE title (its payloads and jobs).
    #[serde(default)]
    tenant: Option<Spanned<String>>,
    /// None: the route only stores.
    #[serde(default)]
    pipelines: Vec<Spanned<String>>,
    #[serde(default)]
    allow_calling: Vec<Spanned<String>>,
    #[serde(default)]
    allow_ips: Vec<Spanned<String>>,
    #[serde(default)]
    assemble: Option<Spanned<String>>,
    #[serde(default)]
    quiet: Option<Spanned<String>>,
    #[serde(default)]
    when: Option<HashMap<Spanned<String>, Spanned<String>>>,
    #[serde(default)]
    export: Vec<ExportFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ExportFile {
    output: Spanned<String>,
    destination: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DestinationFile {
    name: Spanned<String>,
    ae_title: Spanned<String>,
    host: Spanned<String>,
    port: Spanned<u16>,
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
    /// Where `output` is written in the configuration.
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub ae_title: String,
    /// Where the route's `ae-title` is written in the configuration.
    pub location: Location,
    /// Under `ward serve`: the tenant owning this AE title.
    pub tenant: Option<String>,
    /// The pipelines as written: under `ward serve`, names of the tenant's stored pipelines.
    pub pipeline_names: Vec<String>,
    /// The pipelines as files, relative to the configuration (standalone adapter).
    pub pipelines: Vec<PathBuf>,
    /// Where each of `pipelines` is written in the configuration.
    pub pipeline_locations: Vec<Location>,
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
    /// The configuration file it was read from.
    pub file: PathBuf,
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
    /// Jobs the standalone adapter runs at once; none: from the cores and the pipelines'
    /// CPU requests ([`super::pipelines::RoutePipelines::default_max_jobs`]).
    pub max_jobs: Option<usize>,
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
    /// Every problem found, in file order, each at its file:line:col; one per line.
    #[error("{}", crate::pipeline::one_per_line(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems, one line each (a read error is one line too).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.iter().map(Problem::to_string).collect(),
            read => vec![read.to_string()],
        }
    }
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
/// Jobs at once: each is at least a thread and a job directory.
const MAX_JOBS_LIMIT: usize = 1024;
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

/// Problems found while validating, each where it was written.
pub(super) struct Problems {
    file: PathBuf,
    pub(super) found: Vec<Problem>,
}

impl Problems {
    pub(super) fn new(file: &Path) -> Problems {
        Problems {
            file: file.to_path_buf(),
            found: Vec::new(),
        }
    }

    /// Where `spanned` is written.
    pub(super) fn location<T>(&self, spanned: &Spanned<T>) -> Location {
        let (line, column) = spanned
            .span()
            .start()
            .map_or((1, 1), |m| (m.line(), m.column()));
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub(super) fn at<T>(&mut self, spanned: &Spanned<T>, message: impl Into<String>) {
        let location = self.location(spanned);
        self.push(location, message);
    }

    pub(super) fn push(&mut self, location: Location, message: impl Into<String>) {
        self.found.push(Problem {
            location,
            operator: None,
            message: message.into(),
        });
    }

    /// Ok when none was found; else every one, in file order.
    pub(super) fn into_result(mut self) -> Result<(), ConfigError> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found
            .sort_by_key(|p| (p.location.line, p.location.column));
        Err(ConfigError::Invalid(self.found))
    }
}

impl AdapterConfig {
    /// Reads and validates the configuration at `path`; relative paths in it are resolved
    /// against its directory.
    pub fn load(path: &Path) -> Result<AdapterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ConfigFile = from_located_yaml(path, &text, "listen, storage, routes")
            .map_err(|p| ConfigError::Invalid(vec![p]))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Problems::new(path);
        let mut destinations: Vec<Destination> = Vec::new();
        for d in &file.destinations {
            if let Err(why) = check_ae_title(&d.ae_title) {
                problems.at(&d.ae_title, format!("destination '{}': {why}", *d.name));
            }
            if destinations.iter().any(|o| o.name == *d.name) {
                problems.at(
                    &d.name,
                    format!("destination '{}' is defined twice", *d.name),
                );
            }
            destinations.push(Destination {
                name: d.name.to_string(),
                ae_title: d.ae_title.to_string(),
                host: d.host.to_string(),
                port: *d.port,
            });
        }
        let mut routes: Vec<Route> = Vec::new();
        for r in &file.routes {
            let route = route(r, base, &destinations, &mut problems);
            if routes.iter().any(|o| o.ae_title == route.ae_title) {
                problems.at(
                    &r.ae_title,
                    format!("route '{}': the AE title is routed twice", route.ae_title),
                );
            }
            routes.push(route);
        }
        let mut size = |field: &str, value: &Option<Spanned<String>>, default: u64| match value {
            None => default,
            Some(v) => parse_bytes(v).unwrap_or_else(|why| {
                problems.at(v, format!("{field} {why}"));
                default
            }),
        };
        let max_pdu = size("max-pdu", &file.max_pdu, u64::from(DEFAULT_MAX_PDU));
        let max_instance = size("max-instance", &file.max_instance, DEFAULT_MAX_INSTANCE);
        let max_pdu = match u32::try_from(max_pdu)
            .ok()
            .filter(|v| (4096..=(16 << 20)).contains(v))
        {
            Some(v) => v,
            None => {
                if let Some(v) = &file.max_pdu {
                    problems.at(v, "max-pdu must be from 4Ki to 16Mi");
                }
                DEFAULT_MAX_PDU
            }
        };
        let mut duration =
            |field: &str, value: &Option<Spanned<String>>, default: Duration| match value {
                None => default,
                Some(v) => parse_duration(v).unwrap_or_else(|why| {
                    problems.at(v, format!("{field} {why}"));
                    default
                }),
            };
        let export_retry_for = duration(
            "export-retry-for",
            &file.export_retry_for,
            DEFAULT_EXPORT_RETRY_FOR,
        );
        let request_timeout = duration(
            "request-timeout",
            &file.request_timeout,
            DEFAULT_REQUEST_TIMEOUT,
        );
        if let Some(v) = &file.request_timeout {
            if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&request_timeout) {
                problems.at(v, "request-timeout must be from 100ms to 5m");
            }
        }
        let mut count = |field: &str,
                         value: &Option<Spanned<usize>>,
                         default: usize,
                         most: usize| match value {
            None => default,
            Some(v) if (1..=most).contains(&**v) => **v,
            Some(v) => {
                problems.at(v, format!("{field} {} must be from 1 to {most}", **v));
                default
            }
        };
        let max_associations = count(
            "max-associations",
            &file.max_associations,
            DEFAULT_MAX_ASSOCIATIONS,
            MAX_CONNECTION_LIMIT,
        );
        let max_pending_connections = count(
            "max-pending-connections",
            &file.max_pending_connections,
            DEFAULT_MAX_PENDING_CONNECTIONS,
            MAX_CONNECTION_LIMIT,
        );
        let max_connections_per_address = count(
            "max-connections-per-address",
            &file.max_connections_per_address,
            DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            MAX_CONNECTION_LIMIT,
        );
        let max_jobs = file
            .max_jobs
            .as_ref()
            .map(|_| count("max-jobs", &file.max_jobs, 1, MAX_JOBS_LIMIT));
        let ae_title = match &file.ae_title {
            Some(ae) => {
                if let Err(why) = check_ae_title(ae) {
                    problems.at(ae, why);
                }
                ae.to_string()
            }
            None => "WARD".into(),
        };
        problems.into_result()?;
        Ok(AdapterConfig {
            file: path.to_path_buf(),
            listen: file.listen.to_string(),
            storage: base.join(&*file.storage),
            ae_title,
            max_associations,
            max_pending_connections,
            max_connections_per_address,
            request_timeout,
            max_pdu,
            max_instance,
            export_retry_for,
            max_jobs,
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

/// Validates one route; what is wrong goes to `problems`.
fn route(
    r: &RouteFile,
    base: &Path,
    destinations: &[Destination],
    problems: &mut Problems,
) -> Route {
    let at = format!("route '{}'", *r.ae_title);
    if let Err(why) = check_ae_title(&r.ae_title) {
        problems.at(&r.ae_title, format!("{at}: {why}"));
    }
    let assembly = match (r.assemble.as_ref().map(|a| a.as_str()), &r.quiet) {
        (None | Some("association"), None) => Assembly::Association,
        (None | Some("association"), Some(quiet)) => {
            problems.at(
                quiet,
                format!("{at}: `quiet` applies to `assemble: study` only"),
            );
            Assembly::Association
        }
        (Some("study"), None) => Assembly::Study {
            quiet: Duration::from_secs(5),
        },
        (Some("study"), Some(quiet)) => match parse_duration(quiet) {
            Ok(d) => Assembly::Study { quiet: d },
            Err(why) => {
                problems.at(quiet, format!("{at}: quiet {why}"));
                Assembly::Association
            }
        },
        (Some(other), _) => {
            let assemble = r.assemble.as_ref().expect("matched Some");
            problems.at(
                assemble,
                format!("{at}: assemble '{other}' must be `association` or `study`"),
            );
            Assembly::Association
        }
    };
    let mut when: Vec<(&Spanned<String>, &Spanned<String>)> = r.when.iter().flatten().collect();
    when.sort_by_key(|(key, _)| key.span().start().map(|m| (m.line(), m.column())));
    let mut conditions = Vec::new();
    for (key, value) in when {
        let condition = match key.strip_prefix("max-") {
            Some(rest) => match value.parse::<f64>() {
                Ok(v) => Condition::Below {
                    keyword: keyword_of(rest),
                    value: v,
                },
                Err(_) => {
                    problems.at(
                        value,
                        format!("{at}: when {}: '{}' is not a number", **key, **value),
                    );
                    continue;
                }
            },
            None => Condition::Equals {
                keyword: keyword_of(key),
                value: value.to_string(),
            },
        };
        let (Condition::Equals { keyword, .. } | Condition::Below { keyword, .. }) = &condition;
        use dicom_core::dictionary::DataDictionary as _;
        if dicom_dictionary_std::StandardDataDictionary
            .by_name(keyword)
            .is_none()
        {
            problems.at(
                key,
                format!("{at}: when: '{keyword}' is not a DICOM attribute"),
            );
        }
        conditions.push(condition);
    }
    let mut exports = Vec::new();
    for e in &r.export {
        let Some((stage, output)) = e.output.split_once('.') else {
            problems.at(
                &e.output,
                format!("{at}: export output '{}' must be `stage.output`", *e.output),
            );
            continue;
        };
        match destinations.iter().position(|d| d.name == *e.destination) {
            Some(destination) => exports.push(Export {
                stage: stage.to_string(),
                output: output.to_string(),
                destination,
                location: problems.location(&e.output),
            }),
            None => problems.at(
                &e.destination,
                format!("{at}: unknown destination '{}'", *e.destination),
            ),
        }
    }
    let mut allow_ips = Vec::new();
    for ip in &r.allow_ips {
        match ip.parse() {
            Ok(a) => allow_ips.push(a),
            Err(_) => problems.at(ip, format!("{at}: '{}' is not an IP address", **ip)),
        }
    }
    Route {
        ae_title: r.ae_title.to_string(),
        location: problems.location(&r.ae_title),
        tenant: r.tenant.as_ref().map(|t| t.to_string()),
        pipelines: r.pipelines.iter().map(|p| base.join(p.as_str())).collect(),
        pipeline_locations: r.pipelines.iter().map(|p| problems.location(p)).collect(),
        pipeline_names: r.pipelines.iter().map(|p| p.to_string()).collect(),
        allow_calling: r.allow_calling.iter().map(|a| a.to_string()).collect(),
        allow_ips,
        assembly,
        conditions,
        exports,
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
