//! The service configuration as written: every value keeps where it was written, so each
//! problem found in it names its file:line:col. [`super::config`] turns it into a
//! [`super::config::ServeConfig`].

use marked_yaml::Spanned;
use serde::Deserialize;

pub type Text = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct File {
    pub listen: Text,
    pub state: Text,
    pub components: Text,
    #[serde(default)]
    pub capacity: Option<CapacityFile>,
    #[serde(default)]
    pub max_upload: Option<Text>,
    #[serde(default)]
    pub max_stow_parts: Option<Text>,
    #[serde(default)]
    pub tls: Option<TlsFile>,
    /// The DICOM adapter's configuration file, to host it in this service.
    #[serde(default)]
    pub dicom: Option<Text>,
    #[serde(default)]
    pub http: Option<HttpFile>,
    #[serde(default)]
    pub audit_key_file: Option<Text>,
    #[serde(default)]
    pub metrics: Option<MetricsFile>,
    #[serde(default)]
    pub registry: Option<RegistryFile>,
    #[serde(default)]
    pub disk: Option<DiskFile>,
    pub tenants: Spanned<Vec<TenantFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpFile {
    #[serde(default)]
    pub header_timeout: Option<Text>,
    #[serde(default)]
    pub idle_timeout: Option<Text>,
    #[serde(default)]
    pub max_connections: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetricsFile {
    pub tokens: Vec<MetricsTokenFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetricsTokenFile {
    pub name: Text,
    pub sha256: Text,
}

/// Where registry components come from and where their verified copies are kept.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RegistryFile {
    /// A registry configuration (`registries:`), as `ward publish --registry-config` reads.
    #[serde(default)]
    pub config: Option<Text>,
    /// The local component store.
    #[serde(default)]
    pub store: Option<Text>,
}

/// The vendor keys a tenant accepts registry components from.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrustFile {
    /// PEM public keys, relative to the configuration file.
    #[serde(default)]
    pub keys: Vec<Text>,
    #[serde(default)]
    pub require_conformance: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TlsFile {
    pub certificate: Text,
    pub key: Text,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CapacityFile {
    #[serde(default)]
    pub memory: Option<Text>,
    #[serde(default)]
    pub jobs: Option<Text>,
    /// The lowest priority that ends running jobs of lower priority when it does not fit:
    /// `immediate` (the default) or `higher`.
    #[serde(default)]
    pub preempt_from: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TenantFile {
    pub name: Text,
    pub tokens: Vec<TokenFile>,
    #[serde(default)]
    pub quotas: Option<QuotaFile>,
    #[serde(default)]
    pub stow: Option<StowFile>,
    #[serde(default)]
    pub max_priority: Option<Text>,
    #[serde(default)]
    pub trust: Option<TrustFile>,
    #[serde(default)]
    pub retention: Option<RetentionFile>,
}

/// The disk watermarks (`90%`, or a share such as `0.9`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DiskFile {
    #[serde(default)]
    pub high_watermark: Option<Text>,
    #[serde(default)]
    pub low_watermark: Option<Text>,
}

/// How long a tenant's finished jobs and unused payloads are kept (e.g. `15d`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionFile {
    #[serde(default)]
    pub jobs: Option<Text>,
    #[serde(default)]
    pub payloads: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StowFile {
    pub pipelines: Vec<Text>,
    #[serde(default)]
    pub priority: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenFile {
    pub name: Text,
    pub role: Text,
    pub sha256: Text,
    /// Seconds since the Unix epoch after which the token is refused.
    #[serde(default)]
    pub expires: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QuotaFile {
    #[serde(default)]
    pub concurrent_jobs: Option<Text>,
    #[serde(default)]
    pub memory: Option<Text>,
    #[serde(default)]
    pub storage: Option<Text>,
    #[serde(default)]
    pub gpu_memory: Option<Text>,
}
