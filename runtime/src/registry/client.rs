//! Push and pull over the OCI distribution API, through oci-client (which does the token flow
//! and basic auth). Ward's callers are synchronous (the CLI, the job runner's threads), so a
//! `Registry` owns a small runtime of its own and blocks on it. Transient failures — the
//! registry not answering, a 5xx — are retried with backoff; a refusal (401, 404) is not.

use super::config::RegistryConfig;
use futures_util::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {host} could not be reached ({attempts} attempts over {waited_s:.0} s): {why}"
    )]
    Unreachable {
        host: String,
        attempts: u32,
        waited_s: f64,
        why: String,
    },
    #[error("registry {host} refused the credentials for {reference}: {why}; set `username`/`password` for {host} in the registry configuration, or log in with `docker login`")]
    Auth {
        host: String,
        reference: String,
        why: String,
    },
    #[error("registry {host}: TLS failed: {why}; if it uses a private CA give it as `ca:` for {host} in the registry configuration (plain HTTP only with `insecure: true`)")]
    Tls { host: String, why: String },
    #[error("{reference}: not found in registry {host}")]
    NotFound { host: String, reference: String },
    #[error("{what} from {reference} does not match its digest: {why}")]
    Corrupt {
        what: String,
        reference: String,
        why: String,
    },
    #[error("registry {host}: {reference}: {why}")]
    Other {
        host: String,
        reference: String,
        why: String,
    },
    #[error("cannot set up the registry client: {0}")]
    Setup(String),
}

impl RegistryError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

/// A client for every registry the configuration names (and any other, over TLS).
pub struct Registry {
    client: oci_client::Client,
    config: RegistryConfig,
    runtime: tokio::runtime::Runtime,
    /// Tries of one request before it is given up as unreachable.
    attempts: u32,
    first_backoff: Duration,
}

/// The longest wait between two tries of a request.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The size of each chunk of an upload (and the step of its progress bar).
const PUSH_CHUNK: usize = 1 << 20;

impl Registry {
    pub fn new(config: RegistryConfig) -> Result<Registry, RegistryError> {
        install_crypto_provider();
        let client_config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.insecure_hosts()),
            extra_root_certificates: config
                .ca_certificates
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("ward/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RegistryError::Setup(e.to_string()))?;
        Ok(Registry {
            client: oci_client::Client::new(client_config),
            config,
            runtime,
            attempts: 4,
            first_backoff: Duration::from_millis(500),
        })
    }

    /// Tries each request `attempts` times, waiting `first_backoff`, then twice as long…
    pub fn with_retries(mut self, attempts: u32, first_backoff: Duration) -> Registry {
        self.attempts = attempts.max(1);
        self.first_backoff = first_backoff;
        self
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn auth_for(&self, reference: &Reference) -> RegistryAuth {
        match self.config.credentials(reference.registry()) {
            Some((u, p)) => RegistryAuth::Basic(u, p),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Runs `op` with retries on transient failures, mapping errors to what they mean.
    fn with_retry<T, F, Fut>(
        &self,
        reference: &Reference,
        what: &str,
        op: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, OciDistributionError>>,
    {
        let started = std::time::Instant::now();
        let mut backoff = self.first_backoff;
        let mut attempt = 1;
        loop {
            match self.runtime.block_on(op()) {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && attempt < self.attempts => {
                    tracing::warn!(registry = reference.registry(), %reference, attempt, error = %e, "{what}: retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(classify(e, reference, what, attempt, started.elapsed()));
                }
            }
        }
    }

    fn authenticate(
        &self,
        reference: &Reference,
        op: RegistryOperation,
    ) -> Result<(), RegistryError> {
        let auth = self.auth_for(reference);
        self.with_retry(reference, "authenticating", || {
            self.client.auth(reference, &auth, op)
        })
        .map(|_| ())
    }

    /// The raw manifest at `reference` (a tag or a digest) and the digest of its bytes.
    pub fn pull_manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String), RegistryError> {
        self.authenticate(reference, RegistryOperation::Pull)?;
        let auth = self.auth_for(reference);
        let accepted = [super::media::OCI_MANIFEST];
        let pulled = self.with_retry(reference, "pulling the manifest", || {
            self.client.pull_manifest_raw(reference, &auth, &accepted)
        });
        let (bytes, _) = match pulled {
            // oci-client checks a manifest pulled by digest itself.
            Err(RegistryError::Other { why, .. }) if why.contains("Invalid digest") => {
                let got = why
                    .rsplit("got ")
                    .next()
                    .unwrap_or("other bytes")
                    .to_string();
                return Err(RegistryError::Corrupt {
                    what: "the manifest".to_string(),
                    reference: reference.whole(),
                    why: format!("its bytes hash to {got}"),
                });
            }
            other => other?,
        };
        // The digest is always of the bytes received, never the registry's word for it.
        let digest = super::sha256_digest(&bytes);
        Ok((bytes.to_vec(), digest))
    }

    /// The digest the tag in `reference` points at now.
    pub fn resolve(&self, reference: &Reference) -> Result<String, RegistryError> {
        self.pull_manifest(reference).map(|(_, d)| d)
    }

    /// The blob `digest` of `reference`'s repository, checked against the digest; `progress`
    /// hears the bytes as they come.
    pub fn pull_blob(
        &self,
        reference: &Reference,
        digest: &str,
        progress: &dyn Fn(u64),
    ) -> Result<Vec<u8>, RegistryError> {
        self.authenticate(reference, RegistryOperation::Pull)?;
        let bytes = self.with_retry(reference, "pulling a blob", || async {
            let mut stream = self.client.pull_blob_stream(reference, digest).await?;
            let mut out = Vec::with_capacity(stream.content_length.unwrap_or(0) as usize);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                out.extend_from_slice(&chunk);
                progress(out.len() as u64);
            }
            Ok(out)
        });
        let bytes = match bytes {
            Ok(b) => b,
            Err(RegistryError::Other { why, .. }) if why.contains("Invalid digest") => {
                return Err(RegistryError::Corrupt {
                    what: format!("blob {digest}"),
                    reference: reference.whole(),
                    why,
                })
            }
            Err(e) => return Err(e),
        };
        let actual = super::sha256_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::Corrupt {
                what: format!("blob {digest}"),
                reference: reference.whole(),
                why: format!("its bytes hash to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Uploads `bytes` as a blob of `reference`'s repository unless it is there already;
    /// `progress` hears the bytes sent.
    pub fn push_blob(
        &self,
        reference: &Reference,
        bytes: &[u8],
        progress: &dyn Fn(u64),
    ) -> Result<String, RegistryError> {
        self.authenticate(reference, RegistryOperation::Push)?;
        let digest = super::sha256_digest(bytes);
        let exists = self.with_retry(reference, "checking a blob", || {
            self.client.blob_exists(reference, &digest)
        })?;
        if !exists {
            let data = bytes::Bytes::copy_from_slice(bytes);
            self.with_retry(reference, "pushing a blob", || {
                let chunks: Vec<bytes::Bytes> = (0..data.len())
                    .step_by(PUSH_CHUNK)
                    .map(|start| data.slice(start..(start + PUSH_CHUNK).min(data.len())))
                    .collect();
                let mut sent = 0u64;
                let stream = futures_util::stream::iter(chunks).map(move |c| {
                    sent += c.len() as u64;
                    progress(sent);
                    Ok(c)
                });
                self.client.push_blob_stream(reference, stream, &digest)
            })?;
        }
        progress(bytes.len() as u64);
        Ok(digest)
    }

    /// Puts `bytes` as the manifest at `reference`'s tag; returns the digest of the bytes.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
    ) -> Result<String, RegistryError> {
        self.authenticate(reference, RegistryOperation::Push)?;
        let content_type = reqwest::header::HeaderValue::from_static(super::media::OCI_MANIFEST);
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.with_retry(reference, "pushing the manifest", || {
            self.client
                .push_manifest_raw(reference, body.clone(), content_type.clone())
        })?;
        Ok(super::sha256_digest(bytes))
    }
}

/// rustls needs one crypto provider for the process; Ward uses ring throughout.
fn install_crypto_provider() {
    // Another caller (or an earlier Registry) may have installed it already: that is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn is_transient(e: &OciDistributionError) -> bool {
    match e {
        // A certificate the client does not trust will not be trusted on the next try.
        OciDistributionError::RequestError(_) if is_tls_failure(e) => false,
        // Bytes that do not match their digest will not match on the next try either.
        _ if error_chain(e).contains("Invalid digest") => false,
        OciDistributionError::RequestError(r) => r.is_connect() || r.is_timeout() || r.is_request(),
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

fn classify(
    e: OciDistributionError,
    reference: &Reference,
    what: &str,
    attempts: u32,
    waited: Duration,
) -> RegistryError {
    let host = reference.registry().to_string();
    let whole = reference.whole();
    match &e {
        OciDistributionError::RequestError(_) if is_tls_failure(&e) => RegistryError::Tls {
            host,
            why: format!("{what}: {}", error_chain(&e)),
        },
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => RegistryError::Auth {
            host,
            reference: whole,
            why: format!("{what}: {e}"),
        },
        OciDistributionError::ImageManifestNotFoundError(_) => RegistryError::NotFound {
            host,
            reference: whole,
        },
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|err| {
                matches!(
                    err.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            RegistryError::NotFound {
                host,
                reference: whole,
            }
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|err| {
                matches!(err.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
            }) =>
        {
            RegistryError::Auth {
                host,
                reference: whole,
                why: format!("{what}: {e}"),
            }
        }
        OciDistributionError::ServerError { code: 404, .. } => RegistryError::NotFound {
            host,
            reference: whole,
        },
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => RegistryError::Auth {
            host,
            reference: whole,
            why: format!("{what}: {e}"),
        },
        _ if is_transient(&e) => RegistryError::Unreachable {
            host,
            attempts,
            waited_s: waited.as_secs_f64(),
            why: format!("{what}: {}", error_chain(&e)),
        },
        _ => RegistryError::Other {
            host,
            reference: whole,
            why: format!("{what}: {}", error_chain(&e)),
        },
    }
}

/// Whether the TLS handshake failed (an untrusted or wrong certificate, a plain-HTTP server).
fn is_tls_failure(e: &OciDistributionError) -> bool {
    let chain = error_chain(e).to_ascii_lowercase();
    chain.contains("certificate") || chain.contains("invalid peer") || chain.contains("handshake")
}

/// The error and its causes on one line (reqwest hides the useful part in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
