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
//! tenants:
//!   - name: radiology
//!     tokens:                     # SHA-256 of each token, never the token itself
//!       - {name: ci, role: operator, sha256: 9f86d0…, expires: 1798761600}
//!     quotas: {concurrent-jobs: 2, memory: 8Gi, storage: 100Gi, gpu-memory: 4Gi}
//!     stow: {pipelines: [ct-segmentation], priority: higher}   # run on STOW-RS uploads
//! ```

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
    tenants: Vec<TenantFile>,
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
    /// The most memory one stage of this tenant may ask for.
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
            tenants.push(Tenant {
                name: t.name,
                tokens,
                quotas,
                stow_pipelines: t.stow.map(|s| s.pipelines).unwrap_or_default(),
                stow_priority,
            });
        }
        let all: Vec<&str> = tenants
            .iter()
            .flat_map(|t| t.tokens.iter().map(|k| k.sha256.as_str()))
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
