//! `ward serve`'s configuration: where it listens and keeps its state, what the node can run
//! at once, where tenants' pipelines may take components from, and the tenants themselves.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! state: /var/lib/ward            # ward.db, payloads/, jobs/
//! components: /opt/ward/components  # pipelines name components relative to this
//! capacity: {memory: 16Gi, jobs: 4}
//! max-upload: 2Gi                # per request body (default); uploads stream to disk
//! max-stow-parts: 10000          # parts in one STOW-RS body (default)
//! tls: {certificate: cert.pem, key: key.pem}   # PEM; without it the API is plain HTTP
//! dicom: adapter.yaml             # host the DICOM adapter; its routes name their `tenant`
//! http: {header-timeout: 20s, idle-timeout: 5m, max-connections: 1024}
//! audit-key-file: /etc/ward/audit.key   # keys the audit chain (HMAC-SHA256)
//! metrics:                        # who may scrape /metrics for the whole node
//!   tokens: [{name: prometheus, sha256: 2c26b4…}]
//! tenants:
//!   - name: radiology
//!     tokens:                     # SHA-256 of each token, never the token itself
//!       - {name: ci, role: operator, sha256: 9f86d0…, expires: 1798761600}
//!     quotas: {concurrent-jobs: 2, memory: 8Gi, storage: 100Gi, gpu-memory: 4Gi}
//!     max-priority: higher        # the highest priority its jobs may ask for
//!     stow: {pipelines: [ct-segmentation], priority: higher}   # run on STOW-RS uploads
//!     trust:                      # vendors whose signed registry components it runs
//!       keys: [keys/acme.pub]     # PEM public keys, relative to this file
//!       require-conformance: true # refuse components without a passing conformance verdict
//! registry:
//!   config: registries.yaml       # plain-HTTP hosts, CAs, credentials (`registries:`)
//!   store: /var/lib/ward/components-store   # default: <state>/components-store
//! ```
//!
//! - `http`: a connection must send a request's whole header within `header-timeout` (also
//!   the longest a kept-alive connection may wait idle for its next request); a connection on
//!   which no byte moves either way for `idle-timeout` is closed, even mid-request (a body
//!   trickled in slower than that); at most `max-connections` are open at once, and the ones
//!   over it are closed as soon as they are accepted.
//! - `max-priority` (default `higher`): a job asking for more is refused with 403
//!   `priority-not-allowed`; a tenant whose `stow.priority` is above it is refused here.
//!   `immediate` sorts before the fairness between tenants, so it is given only where meant.
//! - `/metrics` needs a token: a `metrics` token sees the node's figures and every tenant's;
//!   a tenant's admin token sees that tenant's figures only; anyone else gets 401 or 403.
//! - `audit-key-file`: the key (at least 32 bytes, read as they are) of the audit chain's
//!   HMAC-SHA256, kept outside the database; `ward serve` refuses to start when it is named
//!   but cannot be read. Without it, `ward serve` generates a key once in the state directory
//!   (`audit.key`, mode 0600): that detects a database rewritten on its own, but not by whoever
//!   can also read the state directory, so a key kept elsewhere is the one to configure.
//! - `trust`: a tenant's pipelines may use a registry component (`component: {ref: …}`) only
//!   when its manifest digest, layer digest and signature verify against one of these keys
//!   (and, with `require-conformance`, it carries a passing conformance verdict); checked
//!   when a pipeline is stored and again by every job. Another tenant's keys count for
//!   nothing. A tag without a digest is pinned when the pipeline is stored.

use super::config_file::{File, Text};
use crate::pipeline::quantity::{parse_bytes, parse_duration};
use crate::pipeline::{Location, Problem};
use marked_yaml::Spanned;
use std::path::{Path, PathBuf};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything of its tenant.
    Viewer,
    /// Also create pipelines, payloads and jobs, start and cancel jobs.
    Operator,
    /// Also read the tenant's audit trail.
    Admin,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// When it stops being accepted (seconds since the Unix epoch).
    pub expires: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Quotas {
    pub concurrent_jobs: usize,
    /// The most memory one stage of this tenant may ask for, and the most a job's port
    /// channels may hold (its `ports-budget`).
    pub memory: u64,
    /// Bytes of payloads the tenant may keep.
    pub storage: u64,
    /// The most GPU memory one stage of this tenant may ask for (`requests.gpu-memory`).
    pub gpu_memory: u64,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub name: String,
    pub tokens: Vec<Token>,
    pub quotas: Quotas,
    /// Pipelines (by name, latest version) that run on each STOW-RS upload, and at what
    /// priority: the DICOMweb counterpart of an AE route.
    pub stow_pipelines: Vec<String>,
    pub stow_priority: super::db::Priority,
    /// The highest priority the tenant's jobs may ask for.
    pub max_priority: super::db::Priority,
    /// The vendor keys whose registry components its pipelines may use.
    pub trust: crate::registry::TrustPolicy,
    /// How long its finished jobs and unused payloads are kept; none: kept until deleted.
    pub retention: Retention,
}

/// A tenant's retention (`retention: {jobs: 15d, payloads: 30d}`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Retention {
    /// A job that succeeded, failed or was cancelled this long ago is removed.
    pub jobs: Option<std::time::Duration>,
    /// A payload created this long ago that no job (of any state) still names is removed.
    pub payloads: Option<std::time::Duration>,
}

/// The API server's bounds on connections.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a request's header may take to arrive (and a kept-alive connection may wait
    /// for its next request).
    pub header_timeout: std::time::Duration,
    /// How long a connection may stay open with no byte moving either way.
    pub idle_timeout: std::time::Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// A token that may read the whole node's `/metrics`.
#[derive(Debug, Clone)]
pub struct MetricsToken {
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub state: PathBuf,
    pub components: PathBuf,
    /// Memory all running jobs may ask for together.
    pub capacity_memory: u64,
    /// Jobs running at once on this node.
    pub capacity_jobs: usize,
    /// The disk watermarks ingest stops above and resumes below (`disk`).
    pub disk: super::disk::Watermarks,
    /// A queued job of this priority or above that does not fit ends running jobs of lower
    /// priority to make room (`capacity.preempt-from`: immediate or higher).
    pub preempt_from: super::db::Priority,
    /// The most bytes one upload's body may have (payload, dataset, STOW-RS).
    pub max_upload: u64,
    /// The most parts one STOW-RS body may have.
    pub max_stow_parts: usize,
    /// PEM certificate chain and private key: the API is served over TLS when given.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The DICOM adapter's configuration, when this service hosts it.
    pub dicom: Option<PathBuf>,
    pub http: HttpLimits,
    /// The audit chain's key; without it, `audit.key` in the state directory.
    pub audit_key_file: Option<PathBuf>,
    pub metrics_tokens: Vec<MetricsToken>,
    /// The registry configuration file; without it, TLS everywhere and docker's credentials.
    pub registry_config: Option<PathBuf>,
    /// The local store of verified registry components.
    pub component_store: PathBuf,
    pub tenants: Vec<Tenant>,
    /// Where the settings that name files and addresses were written, for `ward serve
    /// --check` to name them.
    pub locations: Locations,
}

/// Where some of the configuration's values were written.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    pub listen: Option<Location>,
    pub state: Option<Location>,
    pub components: Option<Location>,
    pub tls_certificate: Option<Location>,
    pub tls_key: Option<Location>,
    pub dicom: Option<Location>,
    pub audit_key_file: Option<Location>,
    pub registry_config: Option<Location>,
    pub component_store: Option<Location>,
}

/// A service configuration that cannot be used: unreadable, or every problem found in it,
/// each with the file:line:col where it was written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the service configuration: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// One line per problem, in file order.
    #[error("{}", crate::pipeline::one_per_line(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Each problem as one line (`FILE:LINE:COL: message`).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.iter().map(Problem::to_string).collect(),
            read => vec![read.to_string()],
        }
    }
}

/// Collects the problems of one configuration file, each where it was written.
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

    pub(super) fn at_line(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub(super) fn at<T>(&self, value: &Spanned<T>) -> Location {
        match value.span().start() {
            Some(m) => self.at_line(m.line(), m.column()),
            None => self.at_line(1, 1),
        }
    }

    pub(super) fn push(&mut self, location: Location, message: impl Into<String>) {
        self.found.push(Problem {
            location,
            operator: None,
            message: message.into(),
        });
    }

    /// `message` about `value`, where it was written.
    pub(super) fn about<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        let location = self.at(value);
        self.push(location, message);
    }

    pub(super) fn into_result(mut self) -> Result<(), ConfigError> {
        if self.found.is_empty() {
            return Ok(());
        }
        self.found
            .sort_by_key(|p| (p.location.line, p.location.column));
        Err(ConfigError::Invalid(self.found))
    }
}

/// Reads the YAML of the configuration at `path`: a syntax error or a key that does not
/// belong is located where it was written.
fn read_file(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::pipeline::located_yaml::from_located_yaml(
        path,
        &text,
        "listen, state, components, tenants",
    )
    .map_err(|problem| ConfigError::Invalid(vec![problem]))
}

impl ServeConfig {
    /// Reads and checks the configuration at `path`; paths in it are relative to its
    /// directory. Every problem found is reported, not just the first.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let (config, problems) = ServeConfig::read(path)?;
        problems.into_result()?;
        Ok(config)
    }

    /// The configuration at `path` with the problems found in its values (where one is
    /// wrong, a default stands in for it); an error when it cannot be read at all.
    pub(super) fn read(path: &Path) -> Result<(ServeConfig, Problems), ConfigError> {
        let file = read_file(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut p = Problems::new(path);
        let bytes = |p: &mut Problems, what: &str, v: Option<&Text>, default: u64| match v {
            None => default,
            Some(v) => parse_bytes(v).unwrap_or_else(|why| {
                p.about(v, format!("{what} {why}"));
                default
            }),
        };
        let count = |p: &mut Problems, what: &str, v: Option<&Text>, default: usize| match v {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    p.about(
                        v,
                        format!("{what} '{}' must be a whole number above 0", v.as_str()),
                    );
                    default
                }
            },
        };
        let duration = |p: &mut Problems, what: &str, v: Option<&Text>, default: u64| {
            let fallback = std::time::Duration::from_secs(default);
            match v.map(|v| (v, parse_duration(v))) {
                None => fallback,
                Some((_, Ok(d))) if !d.is_zero() => d,
                Some((v, Ok(_))) => {
                    p.about(v, format!("{what} must be above 0"));
                    fallback
                }
                Some((v, Err(why))) => {
                    p.about(v, format!("{what} {why}"));
                    fallback
                }
            }
        };
        let priority = |p: &mut Problems, what: String, v: Option<&Text>, default| match v {
            None => default,
            Some(v) => super::db::Priority::parse(v).unwrap_or_else(|| {
                p.about(
                    v,
                    format!(
                        "{what} '{}' must be lower, normal, higher or immediate",
                        v.as_str()
                    ),
                );
                default
            }),
        };
        let hex_ok = |h: &str| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit());

        let capacity = file.capacity.as_ref();
        let capacity_memory = bytes(
            &mut p,
            "capacity.memory",
            capacity.and_then(|c| c.memory.as_ref()),
            8 << 30,
        );
        let capacity_jobs = count(
            &mut p,
            "capacity.jobs",
            capacity.and_then(|c| c.jobs.as_ref()),
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        );
        let share = |p: &mut Problems, what: &str, v: Option<&Text>, default: f64| {
            let Some(v) = v else {
                return default;
            };
            let text = v.as_str().trim();
            let parsed = match text.strip_suffix('%') {
                Some(percent) => percent.trim().parse::<f64>().map(|x| x / 100.0),
                None => text.parse::<f64>(),
            };
            match parsed {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => {
                    p.about(
                        v,
                        format!("{what} '{text}' must be a share of the disk, 0% to 100%"),
                    );
                    default
                }
            }
        };
        let marks = super::disk::Watermarks::default();
        let disk_file = file.disk.as_ref();
        let high = share(
            &mut p,
            "disk.high-watermark",
            disk_file.and_then(|d| d.high_watermark.as_ref()),
            marks.high,
        );
        let low_written = disk_file.and_then(|d| d.low_watermark.as_ref());
        let mut low = share(
            &mut p,
            "disk.low-watermark",
            low_written,
            marks.low.min(high),
        );
        if low > high {
            if let Some(v) = low_written {
                p.about(
                    v,
                    format!(
                        "disk.low-watermark '{}' is above the high watermark ({:.0}%)",
                        v.as_str(),
                        high * 100.0
                    ),
                );
            }
            low = high;
        }
        let disk = super::disk::Watermarks { high, low };
        let preempt_written = capacity.and_then(|c| c.preempt_from.as_ref());
        let mut preempt_from = priority(
            &mut p,
            "capacity.preempt-from".to_string(),
            preempt_written,
            super::db::Priority::Immediate,
        );
        if preempt_from < super::db::Priority::Higher {
            if let Some(written) = preempt_written {
                p.about(
                    written,
                    format!(
                        "capacity.preempt-from '{}' must be higher or immediate: a job is only ended for one of higher priority",
                        written.as_str()
                    ),
                );
            }
            preempt_from = super::db::Priority::Immediate;
        }
        // Uploads are streamed to disk, so this bounds disk and time, not memory; 2 GiB
        // holds a thin-slice CT study.
        let max_upload = bytes(&mut p, "max-upload", file.max_upload.as_ref(), 2 << 30);
        let max_stow_parts = count(
            &mut p,
            "max-stow-parts",
            file.max_stow_parts.as_ref(),
            10_000,
        );
        if file.tenants.is_empty() {
            p.about(
                &file.tenants,
                "no tenants: list at least one under `tenants`",
            );
        }
        let mut tenants: Vec<Tenant> = Vec::new();
        // Every token's hash with where it was written, to find one given twice.
        let mut hashes: Vec<(String, Location)> = Vec::new();
        for t in file.tenants.iter() {
            let name = t.name.as_str();
            let ok_name = !name.is_empty()
                && name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name {
                p.about(
                    &t.name,
                    format!("tenant '{name}': names are 1-63 characters of a-z, 0-9 and '-'"),
                );
            }
            if tenants.iter().any(|o| o.name == name) {
                p.about(&t.name, format!("tenant '{name}' is defined twice"));
            }
            let mut tokens = Vec::new();
            for tok in &t.tokens {
                let at = format!("tenant '{name}', token '{}'", tok.name.as_str());
                let role = match tok.role.as_str() {
                    "viewer" => Role::Viewer,
                    "operator" => Role::Operator,
                    "admin" => Role::Admin,
                    other => {
                        p.about(
                            &tok.role,
                            format!("{at}: role '{other}' must be viewer, operator or admin"),
                        );
                        Role::Viewer
                    }
                };
                if !hex_ok(&tok.sha256) {
                    p.about(
                        &tok.sha256,
                        format!("{at}: sha256 must be 64 hex digits (the token's SHA-256, never the token)"),
                    );
                }
                let expires = match &tok.expires {
                    None => None,
                    Some(e) => match e.parse::<f64>() {
                        Ok(t) => Some(t),
                        Err(_) => {
                            p.about(
                                e,
                                format!("{at}: expires must be seconds since the Unix epoch"),
                            );
                            None
                        }
                    },
                };
                hashes.push((tok.sha256.to_ascii_lowercase(), p.at(&tok.sha256)));
                tokens.push(Token {
                    name: tok.name.to_string(),
                    role,
                    sha256: tok.sha256.to_ascii_lowercase(),
                    expires,
                });
            }
            let q = t.quotas.as_ref();
            let quotas = Quotas {
                concurrent_jobs: count(
                    &mut p,
                    "quotas.concurrent-jobs",
                    q.and_then(|q| q.concurrent_jobs.as_ref()),
                    capacity_jobs,
                ),
                memory: bytes(
                    &mut p,
                    "quotas.memory",
                    q.and_then(|q| q.memory.as_ref()),
                    crate::pipeline::MAX_MEMORY,
                ),
                storage: bytes(
                    &mut p,
                    "quotas.storage",
                    q.and_then(|q| q.storage.as_ref()),
                    u64::MAX,
                ),
                gpu_memory: bytes(
                    &mut p,
                    "quotas.gpu-memory",
                    q.and_then(|q| q.gpu_memory.as_ref()),
                    0,
                ),
            };
            let stow_written = t.stow.as_ref().and_then(|s| s.priority.as_ref());
            let stow_priority = priority(
                &mut p,
                format!("tenant '{name}': stow priority"),
                stow_written,
                super::db::Priority::Normal,
            );
            let max_priority = priority(
                &mut p,
                format!("tenant '{name}': max-priority"),
                t.max_priority.as_ref(),
                super::db::Priority::Higher,
            );
            if stow_priority > max_priority {
                let location = stow_written.map_or_else(|| p.at(&t.name), |s| p.at(s));
                p.push(
                    location,
                    format!(
                        "tenant '{name}': stow priority '{}' is above the tenant's max-priority '{}'",
                        stow_priority.name(),
                        max_priority.name()
                    ),
                );
            }
            let stow_pipelines: Vec<&Text> =
                t.stow.iter().flat_map(|s| s.pipelines.iter()).collect();
            for pipeline in &stow_pipelines {
                if let Err(why) = crate::pipeline::check_identifier(pipeline) {
                    p.about(
                        *pipeline,
                        format!("tenant '{name}': stow pipeline name {why}"),
                    );
                }
            }
            let trust = trust_policy(&mut p, base, name, t.trust.as_ref());
            let kept = |p: &mut Problems, what: &str, v: Option<&Text>| {
                let v = v?;
                match parse_duration(v) {
                    Ok(d) if !d.is_zero() => Some(d),
                    Ok(_) => {
                        p.about(
                            v,
                            format!("tenant '{name}': retention.{what} must be above 0"),
                        );
                        None
                    }
                    Err(why) => {
                        p.about(v, format!("tenant '{name}': retention.{what} {why}"));
                        None
                    }
                }
            };
            let r = t.retention.as_ref();
            let retention = Retention {
                jobs: kept(&mut p, "jobs", r.and_then(|r| r.jobs.as_ref())),
                payloads: kept(&mut p, "payloads", r.and_then(|r| r.payloads.as_ref())),
            };
            tenants.push(Tenant {
                name: name.to_string(),
                tokens,
                quotas,
                stow_pipelines: stow_pipelines.iter().map(|s| s.to_string()).collect(),
                stow_priority,
                max_priority,
                trust,
                retention,
            });
        }
        let mut metrics_tokens = Vec::new();
        for tok in file.metrics.iter().flat_map(|m| m.tokens.iter()) {
            if !hex_ok(&tok.sha256) {
                p.about(
                    &tok.sha256,
                    format!(
                        "metrics token '{}': sha256 must be 64 hex digits (the token's SHA-256, never the token)",
                        tok.name.as_str()
                    ),
                );
            }
            hashes.push((tok.sha256.to_ascii_lowercase(), p.at(&tok.sha256)));
            metrics_tokens.push(MetricsToken {
                name: tok.name.to_string(),
                sha256: tok.sha256.to_ascii_lowercase(),
            });
        }
        for (i, (hash, location)) in hashes.iter().enumerate() {
            if let Some((_, first)) = hashes[..i].iter().find(|(h, _)| h == hash) {
                p.push(
                    location.clone(),
                    format!("this token has the same hash as the one at {first}"),
                );
            }
        }
        let registry = file.registry.as_ref();
        let h = file.http.as_ref();
        let http = HttpLimits {
            header_timeout: duration(
                &mut p,
                "http.header-timeout",
                h.and_then(|h| h.header_timeout.as_ref()),
                20,
            ),
            idle_timeout: duration(
                &mut p,
                "http.idle-timeout",
                h.and_then(|h| h.idle_timeout.as_ref()),
                300,
            ),
            max_connections: count(
                &mut p,
                "http.max-connections",
                h.and_then(|h| h.max_connections.as_ref()),
                1024,
            ),
        };
        let locations = Locations {
            listen: Some(p.at(&file.listen)),
            state: Some(p.at(&file.state)),
            components: Some(p.at(&file.components)),
            tls_certificate: file.tls.as_ref().map(|t| p.at(&t.certificate)),
            tls_key: file.tls.as_ref().map(|t| p.at(&t.key)),
            dicom: file.dicom.as_ref().map(|d| p.at(d)),
            audit_key_file: file.audit_key_file.as_ref().map(|k| p.at(k)),
            registry_config: registry.and_then(|r| r.config.as_ref()).map(|c| p.at(c)),
            component_store: registry.and_then(|r| r.store.as_ref()).map(|s| p.at(s)),
        };
        let registry_config = registry
            .and_then(|r| r.config.as_ref())
            .map(|c| base.join(c.as_str()));
        let component_store = registry.and_then(|r| r.store.as_ref()).map_or_else(
            || base.join(file.state.as_str()).join("components-store"),
            |s| base.join(s.as_str()),
        );
        let config = ServeConfig {
            listen: file.listen.to_string(),
            state: base.join(file.state.as_str()),
            components: base.join(file.components.as_str()),
            capacity_memory,
            capacity_jobs,
            preempt_from,
            disk,
            max_upload,
            max_stow_parts,
            tls: file
                .tls
                .map(|t| (base.join(t.certificate.as_str()), base.join(t.key.as_str()))),
            dicom: file.dicom.map(|d| base.join(d.as_str())),
            http,
            audit_key_file: file.audit_key_file.map(|k| base.join(k.as_str())),
            metrics_tokens,
            registry_config,
            component_store,
            tenants,
            locations,
        };
        Ok((config, p))
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// Tenant `tenant`'s trust policy: each key file read now (relative to `base`), a bad one
/// reported where it was named.
fn trust_policy(
    p: &mut Problems,
    base: &Path,
    tenant: &str,
    trust: Option<&super::config_file::TrustFile>,
) -> crate::registry::TrustPolicy {
    let Some(trust) = trust else {
        return crate::registry::TrustPolicy::default();
    };
    let mut keys = Vec::new();
    for key in &trust.keys {
        let path = base.join(key.as_str());
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                // The source names the tenant too: provenance records say who trusted it.
                let source = format!("tenant '{tenant}': {}", path.display());
                crate::registry::PublicKey::from_pem(&text, &source).map_err(|why| {
                    format!(
                        "{} is not a PEM public key (SubjectPublicKeyInfo): {why}",
                        path.display()
                    )
                })
            });
        match read {
            Ok(k) => keys.push(k),
            Err(why) => p.about(key, format!("tenant '{tenant}': trust key {why}")),
        }
    }
    let require_conformance = match &trust.require_conformance {
        None => false,
        Some(v) => match v.as_str() {
            "true" => true,
            "false" => false,
            other => {
                p.about(
                    v,
                    format!("tenant '{tenant}': trust.require-conformance '{other}' must be true or false"),
                );
                false
            }
        },
    };
    crate::registry::TrustPolicy {
        keys,
        require_conformance,
    }
}

/// The lowercase hex SHA-256 of a token, as the configuration holds it.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
