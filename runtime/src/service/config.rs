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

use crate::pipeline::quantity::parse_bytes;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct File {
    listen: String,
    state: String,
    components: String,
    #[serde(default)]
    capacity: Option<CapacityFile>,
    #[serde(default)]
    max_upload: Option<String>,
    #[serde(default)]
    max_stow_parts: Option<String>,
    #[serde(default)]
    tls: Option<TlsFile>,
    /// The DICOM adapter's configuration file, to host it in this service.
    #[serde(default)]
    dicom: Option<String>,
    #[serde(default)]
    http: Option<HttpFile>,
    #[serde(default)]
    audit_key_file: Option<String>,
    #[serde(default)]
    metrics: Option<MetricsFile>,
    tenants: Vec<TenantFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    header_timeout: Option<String>,
    #[serde(default)]
    idle_timeout: Option<String>,
    #[serde(default)]
    max_connections: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MetricsFile {
    tokens: Vec<MetricsTokenFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MetricsTokenFile {
    name: String,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TlsFile {
    certificate: String,
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CapacityFile {
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    jobs: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TenantFile {
    name: String,
    tokens: Vec<TokenFile>,
    #[serde(default)]
    quotas: Option<QuotaFile>,
    #[serde(default)]
    stow: Option<StowFile>,
    #[serde(default)]
    max_priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StowFile {
    pipelines: Vec<String>,
    #[serde(default)]
    priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TokenFile {
    name: String,
    role: String,
    sha256: String,
    /// Seconds since the Unix epoch after which the token is refused.
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct QuotaFile {
    #[serde(default)]
    concurrent_jobs: Option<String>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    storage: Option<String>,
    #[serde(default)]
    gpu_memory: Option<String>,
}

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
    pub tenants: Vec<Tenant>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let file: File = marked_yaml::from_yaml(0, &text).map_err(|e| err(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut problems = Vec::new();
        let bytes =
            |what: &str, v: Option<&String>, default: u64, problems: &mut Vec<String>| match v
                .map(|v| parse_bytes(v))
            {
                None => default,
                Some(Ok(b)) => b,
                Some(Err(why)) => {
                    problems.push(format!("{what} {why}"));
                    default
                }
            };
        let count =
            |what: &str, v: Option<&String>, default: usize, problems: &mut Vec<String>| match v
                .map(|v| v.parse::<usize>())
            {
                None => default,
                Some(Ok(n)) if n > 0 => n,
                _ => {
                    problems.push(format!("{what} must be a whole number above 0"));
                    default
                }
            };
        let capacity = file.capacity.as_ref();
        let capacity_memory = bytes(
            "capacity.memory",
            capacity.and_then(|c| c.memory.as_ref()),
            8 << 30,
            &mut problems,
        );
        let capacity_jobs = count(
            "capacity.jobs",
            capacity.and_then(|c| c.jobs.as_ref()),
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            &mut problems,
        );
        let max_upload = bytes(
            "max-upload",
            file.max_upload.as_ref(),
            // Uploads are streamed to disk, so this bounds disk and time, not memory; 2 GiB
            // holds a thin-slice CT study.
            2 << 30,
            &mut problems,
        );
        let max_stow_parts = count(
            "max-stow-parts",
            file.max_stow_parts.as_ref(),
            10_000,
            &mut problems,
        );
        let mut tenants: Vec<Tenant> = Vec::new();
        for t in file.tenants {
            let ok_name = !t.name.is_empty()
                && t.name.len() <= 63
                && t.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name {
                problems.push(format!(
                    "tenant '{}': names are 1-63 characters of a-z, 0-9 and '-'",
                    t.name
                ));
            }
            if tenants.iter().any(|o| o.name == t.name) {
                problems.push(format!("tenant '{}' is defined twice", t.name));
            }
            let mut tokens = Vec::new();
            for tok in t.tokens {
                let role = match tok.role.as_str() {
                    "viewer" => Role::Viewer,
                    "operator" => Role::Operator,
                    "admin" => Role::Admin,
                    other => {
                        problems.push(format!(
                            "tenant '{}', token '{}': role '{other}' must be viewer, operator or admin",
                            t.name, tok.name
                        ));
                        Role::Viewer
                    }
                };
                let hex_ok =
                    tok.sha256.len() == 64 && tok.sha256.chars().all(|c| c.is_ascii_hexdigit());
                if !hex_ok {
                    problems.push(format!(
                        "tenant '{}', token '{}': sha256 must be 64 hex digits (the token's SHA-256, never the token)",
                        t.name, tok.name
                    ));
                }
                let expires = match tok.expires.as_deref().map(str::parse::<f64>) {
                    None => None,
                    Some(Ok(t)) => Some(t),
                    Some(Err(_)) => {
                        problems.push(format!(
                            "tenant '{}', token '{}': expires must be seconds since the Unix epoch",
                            t.name, tok.name
                        ));
                        None
                    }
                };
                tokens.push(Token {
                    name: tok.name,
                    role,
                    sha256: tok.sha256.to_ascii_lowercase(),
                    expires,
                });
            }
            let q = t.quotas.as_ref();
            let quotas = Quotas {
                concurrent_jobs: count(
                    "quotas.concurrent-jobs",
                    q.and_then(|q| q.concurrent_jobs.as_ref()),
                    capacity_jobs,
                    &mut problems,
                ),
                memory: bytes(
                    "quotas.memory",
                    q.and_then(|q| q.memory.as_ref()),
                    crate::pipeline::MAX_MEMORY,
                    &mut problems,
                ),
                storage: bytes(
                    "quotas.storage",
                    q.and_then(|q| q.storage.as_ref()),
                    u64::MAX,
                    &mut problems,
                ),
                gpu_memory: bytes(
                    "quotas.gpu-memory",
                    q.and_then(|q| q.gpu_memory.as_ref()),
                    0,
                    &mut problems,
                ),
            };
            let stow_priority = match t.stow.as_ref().and_then(|s| s.priority.as_deref()) {
                None => super::db::Priority::Normal,
                Some(p) => super::db::Priority::parse(p).unwrap_or_else(|| {
                    problems.push(format!(
                        "tenant '{}': stow priority '{p}' must be lower, normal, higher or immediate",
                        t.name
                    ));
                    super::db::Priority::Normal
                }),
            };
            let max_priority = match t.max_priority.as_deref() {
                None => super::db::Priority::Higher,
                Some(p) => super::db::Priority::parse(p).unwrap_or_else(|| {
                    problems.push(format!(
                        "tenant '{}': max-priority '{p}' must be lower, normal, higher or immediate",
                        t.name
                    ));
                    super::db::Priority::Higher
                }),
            };
            if stow_priority > max_priority {
                problems.push(format!(
                    "tenant '{}': stow priority '{}' is above the tenant's max-priority '{}'",
                    t.name,
                    stow_priority.name(),
                    max_priority.name()
                ));
            }
            tenants.push(Tenant {
                name: t.name,
                tokens,
                quotas,
                stow_pipelines: t.stow.map(|s| s.pipelines).unwrap_or_default(),
                stow_priority,
                max_priority,
            });
        }
        let mut metrics_tokens = Vec::new();
        for tok in file.metrics.map(|m| m.tokens).unwrap_or_default() {
            if !(tok.sha256.len() == 64 && tok.sha256.chars().all(|c| c.is_ascii_hexdigit())) {
                problems.push(format!(
                    "metrics token '{}': sha256 must be 64 hex digits (the token's SHA-256, never the token)",
                    tok.name
                ));
            }
            metrics_tokens.push(MetricsToken {
                name: tok.name,
                sha256: tok.sha256.to_ascii_lowercase(),
            });
        }
        let h = file.http.as_ref();
        let duration =
            |what: &str, v: Option<&String>, default: u64, problems: &mut Vec<String>| match v
                .map(|v| crate::pipeline::quantity::parse_duration(v))
            {
                None => std::time::Duration::from_secs(default),
                Some(Ok(d)) if !d.is_zero() => d,
                Some(Ok(_)) => {
                    problems.push(format!("{what} must be above 0"));
                    std::time::Duration::from_secs(default)
                }
                Some(Err(why)) => {
                    problems.push(format!("{what} {why}"));
                    std::time::Duration::from_secs(default)
                }
            };
        let http = HttpLimits {
            header_timeout: duration(
                "http.header-timeout",
                h.and_then(|h| h.header_timeout.as_ref()),
                20,
                &mut problems,
            ),
            idle_timeout: duration(
                "http.idle-timeout",
                h.and_then(|h| h.idle_timeout.as_ref()),
                300,
                &mut problems,
            ),
            max_connections: count(
                "http.max-connections",
                h.and_then(|h| h.max_connections.as_ref()),
                1024,
                &mut problems,
            ),
        };
        let all: Vec<&str> = tenants
            .iter()
            .flat_map(|t| t.tokens.iter().map(|k| k.sha256.as_str()))
            .chain(metrics_tokens.iter().map(|k| k.sha256.as_str()))
            .collect();
        if (1..all.len()).any(|i| all[..i].contains(&all[i])) {
            problems.push("two tokens have the same hash".into());
        }
        if !problems.is_empty() {
            return Err(err(problems.join("; ")));
        }
        Ok(ServeConfig {
            listen: file.listen,
            state: base.join(file.state),
            components: base.join(file.components),
            capacity_memory,
            capacity_jobs,
            max_upload,
            max_stow_parts,
            tls: file
                .tls
                .map(|t| (base.join(t.certificate), base.join(t.key))),
            dicom: file.dicom.map(|d| base.join(d)),
            http,
            audit_key_file: file.audit_key_file.map(|k| base.join(k)),
            metrics_tokens,
            tenants,
        })
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }
}

/// The lowercase hex SHA-256 of a token, as the configuration holds it.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}
