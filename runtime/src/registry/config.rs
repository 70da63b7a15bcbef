//! How Ward reaches registries: which hosts may be spoken to over plain HTTP (only those
//! listed as `insecure`; everything else is TLS with rustls), extra CA certificates, and
//! credentials — from Ward's registry configuration or, failing that, a docker
//! `config.json` (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), as `docker login`
//! and `skopeo login` write it.
//!
//! ```yaml
//! registries:
//!   "127.0.0.1:5000":
//!     insecure: true
//!   "registry.hospital.example":
//!     ca: /etc/ward/registry-ca.pem
//!     username: ward
//!     password: secret
//! ```

use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    #[error("{}: cannot read the registry configuration: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{}: registry '{host}': cannot read its CA certificate {}: {source}", file.display(), ca.display())]
    Ca {
        file: PathBuf,
        host: String,
        ca: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the docker credentials: {why}", path.display())]
    DockerConfig { path: PathBuf, why: String },
}

/// One registry host's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryHost {
    /// Plain HTTP: for a registry on the node itself or a test bench, never by default.
    #[serde(default)]
    pub insecure: bool,
    /// A PEM CA certificate trusted for this registry's TLS, beside the system's roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

/// Every registry host Ward has settings for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryHost>,
    /// Credentials read from a docker `config.json`, by host (used when `registries` gives none).
    #[serde(skip)]
    pub docker_credentials: BTreeMap<String, (String, String)>,
    /// The CA certificates named by `ca:`, read when the configuration was loaded.
    #[serde(skip)]
    pub ca_certificates: Vec<Vec<u8>>,
}

impl RegistryConfig {
    /// Reads a registry configuration file (relative `ca:` paths are against its directory),
    /// then the docker credentials.
    pub fn load(path: &Path) -> Result<RegistryConfig, RegistryConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: RegistryConfig =
            crate::pipeline::located_yaml::from_located_yaml(path, &text, "registries")
                .map_err(|p| RegistryConfigError::Invalid(p.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base, path)?;
        config.docker_credentials = docker_credentials()?;
        Ok(config)
    }

    /// The settings named nowhere: TLS everywhere, docker credentials if there are any.
    pub fn from_environment() -> Result<RegistryConfig, RegistryConfigError> {
        Ok(RegistryConfig {
            docker_credentials: docker_credentials()?,
            ..RegistryConfig::default()
        })
    }

    /// Makes `ca:` paths absolute against `base` and reads them; `file` names the
    /// configuration in errors.
    pub fn resolve_paths(&mut self, base: &Path, file: &Path) -> Result<(), RegistryConfigError> {
        self.ca_certificates.clear();
        for (host, settings) in &mut self.registries {
            if let Some(ca) = &mut settings.ca {
                if ca.is_relative() {
                    *ca = base.join(&*ca);
                }
                let pem = std::fs::read(&*ca).map_err(|source| RegistryConfigError::Ca {
                    file: file.to_path_buf(),
                    host: host.clone(),
                    ca: ca.clone(),
                    source,
                })?;
                self.ca_certificates.push(pem);
            }
        }
        Ok(())
    }

    /// Hosts that are spoken to over plain HTTP.
    pub fn insecure_hosts(&self) -> Vec<String> {
        self.registries
            .iter()
            .filter(|(_, h)| h.insecure)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The username and password for `host`: Ward's configuration first, then docker's.
    pub fn credentials(&self, host: &str) -> Option<(String, String)> {
        if let Some(h) = self.registries.get(host) {
            if let (Some(u), Some(p)) = (&h.username, &h.password) {
                return Some((u.clone(), p.clone()));
            }
        }
        self.docker_credentials.get(host).cloned()
    }
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Host → (username, password) from the docker `config.json`, if there is one.
fn docker_credentials() -> Result<BTreeMap<String, (String, String)>, RegistryConfigError> {
    let Some(path) = docker_config_path().filter(|p| p.is_file()) else {
        return Ok(BTreeMap::new());
    };
    let bad = |why: String| RegistryConfigError::DockerConfig {
        path: path.clone(),
        why,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (host, auth) in config.auths {
        // docker writes "https://index.docker.io/v1/" for Docker Hub and bare hosts otherwise.
        let host = host
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let pair = match (auth.auth, auth.username, auth.password) {
            (Some(encoded), _, _) => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| bad(format!("auths.\"{host}\".auth is not base64: {e}")))?;
                let text = String::from_utf8(decoded)
                    .map_err(|_| bad(format!("auths.\"{host}\".auth is not UTF-8")))?;
                let (u, p) = text.split_once(':').ok_or_else(|| {
                    bad(format!(
                        "auths.\"{host}\".auth is not base64 of user:password"
                    ))
                })?;
                (u.to_string(), p.to_string())
            }
            (None, Some(u), Some(p)) => (u, p),
            _ => continue,
        };
        out.insert(host, pair);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_credentials_and_insecure_ones_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "PEM").unwrap();
        let file = dir.path().join("registries.yaml");
        std::fs::write(
            &file,
            "registries:\n  \"127.0.0.1:5000\":\n    insecure: true\n  \"r.example\":\n    ca: ca.pem\n    username: u\n    password: p\n",
        )
        .unwrap();
        let config = RegistryConfig::load(&file).unwrap();
        assert_eq!(config.insecure_hosts(), vec!["127.0.0.1:5000".to_string()]);
        assert_eq!(
            config.credentials("r.example"),
            Some(("u".to_string(), "p".to_string()))
        );
        assert_eq!(config.ca_certificates, vec![b"PEM".to_vec()]);
    }

    #[test]
    fn an_unknown_key_is_placed_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("registries.yaml");
        std::fs::write(&file, "registries:\n  \"h\":\n    insecur: true\n").unwrap();
        let err = RegistryConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("registries.yaml:3"), "{err}");
        assert!(err.contains("insecur"), "{err}");
    }
}
