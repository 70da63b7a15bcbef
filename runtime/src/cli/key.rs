//! `ward key generate PREFIX`: a signing key pair for publishing components.

use std::path::PathBuf;
use ward::registry::SigningKey;

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Write a new ECDSA P-256 key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub
    /// (the public key to give hospitals; `cosign verify --key` reads it too).
    Generate {
        /// Where to write the pair (e.g. `acme` gives acme.key and acme.pub). Never overwritten.
        prefix: PathBuf,
    },
}

pub fn run(cmd: KeyCommand) -> anyhow::Result<i32> {
    match cmd {
        KeyCommand::Generate { prefix } => {
            let key = SigningKey::generate();
            let (private, public) = key.write_pair(&prefix)?;
            out!("private key: {} (keep it secret)", private.display());
            out!("public key:  {}", public.display());
            out!("fingerprint: {}", key.public_key().fingerprint());
            Ok(0)
        }
    }
}
