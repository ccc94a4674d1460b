//! Key material and sealing: the AES-256-GCM key that seals env var values and OAuth tokens at
//! rest (row id as associated data), random tokens, and the one-way hashes tokens are stored as.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// Reads a hex key file, or creates it (mode 0600) with fresh random bytes on first start.
pub fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            crate::config::parse_secret_key(&text).with_context(|| {
                format!(
                    "{} is not a 32-byte hex key; restore it from backup",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = random_bytes();
            write_private_file(path, format!("{}\n", hex::encode(key)).as_bytes())?;
            tracing::info!(path = %path.display(), "generated a new key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Creates `path` readable by its owner only. Fails if it already exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "key file is readable by other users; run chmod 600");
        }
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

/// A random URL-safe token with 256 bits of entropy and an optional readable prefix.
pub fn random_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// The stored form of a bearer token: SHA-256, hex. Tokens are random, so no salt is needed.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A stable public id of this installation, derived from its secret key: instances that share
/// a database share the key, hence the id. Used to label Docker objects.
pub fn instance_id(secret_key: &[u8; 32]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"shard instance id\0");
    hasher.update(secret_key);
    hex::encode(&hasher.finalize()[..8])
}

/// A key for one purpose, derived from the secret key (HMAC-SHA256 keyed by it), so every
/// instance sharing the secret key shares it too and nothing else has to be copied around.
pub fn derive_key(secret_key: &[u8; 32], purpose: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_key).expect("HMAC takes any key");
    mac.update(b"shard derived key\0");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Constant-time equality for secrets compared against user input.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Seals and opens small secrets with AES-256-GCM; the output is `nonce || ciphertext+tag`.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
#[error("sealed value cannot be opened (wrong secret key or tampered data)")]
pub struct OpenError;

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key)),
        }
    }

    /// Seals `plaintext`, binding it to `aad` (the owning row's id) so it cannot be moved.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
        let nonce = Nonce::from(nonce_bytes);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| OpenError)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_aad() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal(b"hunter2", b"row-1");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(sealer.open(&sealed, b"row-1").unwrap(), b"hunter2");
        assert!(sealer.open(&sealed, b"row-2").is_err());
        assert!(Sealer::new(&[8u8; 32]).open(&sealed, b"row-1").is_err());
        assert!(sealer.open(&sealed[..5], b"row-1").is_err());
    }
}
