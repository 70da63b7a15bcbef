//! Keys and signatures as cosign makes them with `cosign sign --key`: ECDSA P-256 over
//! SHA-256, DER-encoded and base64'd, over a "simple signing" JSON payload whose
//! `docker-manifest-digest` names the signed manifest. Keys are PEM: PKCS#8 (or SEC1) for the
//! private key, SubjectPublicKeyInfo for the public one, so `cosign verify --key ward.pub`
//! and any other ECDSA implementation read them.

use base64::Engine as _;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ECDSA P-256 {kind} key in PEM form ({why})", path.display())]
    Format {
        path: PathBuf,
        kind: &'static str,
        why: String,
    },
    #[error("{}: already exists; remove it or choose another name (keys are never overwritten)", path.display())]
    Exists { path: PathBuf },
}

/// A private key that signs component manifests.
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
}

/// A public key that verifies signatures, named by its fingerprint.
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    /// `sha256:<hex>` of the key's SubjectPublicKeyInfo DER: the same bytes however the PEM
    /// was wrapped, so it names the key in records.
    fingerprint: String,
    /// Where the key came from (a file, a tenant's configuration), for messages.
    pub source: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} from {})", self.fingerprint, self.source)
    }
}

impl SigningKey {
    pub fn generate() -> SigningKey {
        SigningKey {
            key: p256::ecdsa::SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// Reads a PKCS#8 ("PRIVATE KEY") or SEC1 ("EC PRIVATE KEY") PEM file.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, KeyError> {
        let text = read_text(path)?;
        let key = if text.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(&text)
                .map(p256::ecdsa::SigningKey::from)
                .map_err(|e| e.to_string())
        } else {
            p256::ecdsa::SigningKey::from_pkcs8_pem(&text).map_err(|e| e.to_string())
        };
        key.map(|key| SigningKey { key })
            .map_err(|why| KeyError::Format {
                path: path.to_path_buf(),
                kind: "private",
                why,
            })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::new(*self.key.verifying_key(), "the signing key".to_string())
    }

    /// The base64 DER signature over `payload`, as cosign stores it in its annotation.
    pub fn sign(&self, payload: &[u8]) -> String {
        let signature: Signature = self.key.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    /// Writes `PREFIX.key` (PKCS#8 PEM, readable by its owner only) and `PREFIX.pub`; never
    /// overwrites either.
    pub fn write_pair(&self, prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let private = with_suffix(prefix, "key");
        let public = with_suffix(prefix, "pub");
        for path in [&private, &public] {
            if path.exists() {
                return Err(KeyError::Exists { path: path.clone() });
            }
        }
        let pem = self
            .key
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|e| KeyError::Format {
                path: private.clone(),
                kind: "private",
                why: e.to_string(),
            })?;
        write_new(&private, pem.as_bytes(), 0o600)?;
        write_new(&public, self.public_key().to_pem().as_bytes(), 0o644)?;
        Ok((private, public))
    }
}

impl PublicKey {
    fn new(key: VerifyingKey, source: String) -> PublicKey {
        let der = key
            .to_public_key_der()
            .expect("a P-256 public key always encodes");
        PublicKey {
            key,
            fingerprint: super::sha256_digest(der.as_bytes()),
            source,
        }
    }

    /// Reads a SubjectPublicKeyInfo ("PUBLIC KEY") PEM file.
    pub fn from_pem_file(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_text(path)?;
        PublicKey::from_pem(&text, &path.display().to_string()).map_err(|why| KeyError::Format {
            path: path.to_path_buf(),
            kind: "public",
            why,
        })
    }

    /// Parses PEM text; `source` names where it came from in later messages.
    pub fn from_pem(text: &str, source: &str) -> Result<PublicKey, String> {
        VerifyingKey::from_public_key_pem(text.trim())
            .map(|key| PublicKey::new(key, source.to_string()))
            .map_err(|e| e.to_string())
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("a P-256 public key always encodes")
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature_b64` (base64 DER, or the 64-byte fixed form) signs `payload`.
    pub fn verifies(&self, payload: &[u8], signature_b64: &str) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim())
        else {
            return false;
        };
        let signature = Signature::from_der(&bytes).or_else(|_| Signature::from_slice(&bytes));
        let Ok(signature) = signature else {
            return false;
        };
        // Other implementations may leave S in the upper half; it verifies all the same.
        let signature = signature.normalize_s().unwrap_or(signature);
        self.key.verify(payload, &signature).is_ok()
    }
}

/// The simple-signing payload cosign signs.
#[derive(Debug, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    #[serde(default)]
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

/// The `type` every cosign payload carries.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

impl SimpleSigning {
    /// The payload for `repository` (registry/name, no tag) at `manifest_digest`.
    pub fn new(repository: &str, manifest_digest: &str) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: repository.to_string(),
                },
                image: Image {
                    docker_manifest_digest: manifest_digest.to_string(),
                },
                kind: SIMPLE_SIGNING_TYPE.to_string(),
            },
            optional: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("the payload always serialises")
    }

    /// Parses a payload and checks it is a cosign container image signature.
    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, String> {
        let payload: SimpleSigning = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a simple-signing payload: {e}"))?;
        if payload.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(format!(
                "payload type is '{}', not '{SIMPLE_SIGNING_TYPE}'",
                payload.critical.kind
            ));
        }
        Ok(payload)
    }
}

fn read_text(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_signature_verifies_only_its_payload_and_key() {
        let key = SigningKey::generate();
        let payload = SimpleSigning::new("127.0.0.1:5000/acme/segment", "sha256:00").to_bytes();
        let sig = key.sign(&payload);
        assert!(key.public_key().verifies(&payload, &sig));
        let mut edited = payload.clone();
        edited[10] ^= 1;
        assert!(!key.public_key().verifies(&edited, &sig));
        assert!(!SigningKey::generate().public_key().verifies(&payload, &sig));
        assert!(!key.public_key().verifies(&payload, "not base64!"));
    }

    #[test]
    fn keys_round_trip_through_pem_files_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("vendor");
        let key = SigningKey::generate();
        let (private, public) = key.write_pair(&prefix).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = SigningKey::from_pem_file(&private).unwrap();
        let public = PublicKey::from_pem_file(&public).unwrap();
        assert_eq!(public.fingerprint(), key.public_key().fingerprint());
        assert!(public.verifies(b"x", &back.sign(b"x")));
        assert!(matches!(
            SigningKey::generate().write_pair(&prefix),
            Err(KeyError::Exists { .. })
        ));
        let err = PublicKey::from_pem_file(&private).unwrap_err().to_string();
        assert!(err.contains("not an ECDSA P-256 public key"), "{err}");
    }

    #[test]
    fn payloads_of_another_type_are_refused() {
        let mut p = SimpleSigning::new("r/n", "sha256:00");
        p.critical.kind = "something else".into();
        assert!(SimpleSigning::parse(&p.to_bytes()).is_err());
        assert!(SimpleSigning::parse(b"{}").is_err());
    }
}
