//! argon2id password hashing with bounded concurrency and memory that is given back.
//!
//! Each hash needs a 19 MiB block of memory (OWASP parameters). Left to the default allocation,
//! glibc raises its mmap threshold after the first such block is freed and later blocks come
//! from (and stay in) per-thread arenas: about 19 MiB of RSS kept per login thread, for good.
//! Here the blocks are allocated with a capacity above glibc's largest dynamic mmap threshold
//! (32 MiB), so every block is its own mapping, returned to the system when the hash is done;
//! only the pages argon2 touches are ever resident. A semaphore bounds how many hashes run at
//! once, so a login flood queues instead of multiplying that memory.

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// A valid argon2id hash of a random password, verified against when the username is unknown
/// so that a wrong username costs as much time as a wrong password.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2hhcmQtZGVjb3ktc2FsdA$v4Qj0Vw3p0QvG3u5cz2yqg7Cw4e0m7x9qf0j0bq8k1E";

/// Above glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on 64-bit): always mmapped, unmapped on
/// free, and never moves the dynamic threshold.
const MAPPED_CAPACITY_BLOCKS: usize = 33 * 1024;

/// Hashes and verifies passwords, at most `concurrency` at a time.
pub struct PasswordHasher {
    permits: Semaphore,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
        }
    }

    /// Hashes with argon2id (default parameters) into a PHC string.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
            .await
            .context("password hashing task panicked")?
    }

    /// Verifies `password` against `hash`; `None` (unknown user) burns the same time and fails.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DECOY_HASH.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_blocking(password.as_bytes(), &hash))
            .await
            .unwrap_or(false);
        ok && known
    }
}

/// Runs argon2 over freshly mapped memory that is unmapped when it returns.
fn compute(argon2: &Argon2, password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
    let count = argon2.params().block_count();
    let mut blocks: Vec<Block> = Vec::with_capacity(count.max(MAPPED_CAPACITY_BLOCKS));
    blocks.resize(count, Block::default());
    argon2
        .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
        .map_err(|e| anyhow::anyhow!("argon2 failed: {e}"))
}

fn hash_blocking(password: &[u8]) -> anyhow::Result<String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(&argon2, password, &salt, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("{e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_blocking(password: &[u8], hash: &str) -> bool {
    let check = || -> anyhow::Result<bool> {
        let parsed = PasswordHash::new(hash).map_err(|e| anyhow::anyhow!("{e}"))?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("{e}"))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(false);
        };
        let mut out = vec![0u8; expected.len()];
        compute(
            &Argon2::new(algorithm, version, params),
            password,
            salt,
            &mut out,
        )?;
        Ok(out.ct_eq(expected.as_bytes()).into())
    };
    check().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoy_is_parseable() {
        let hasher = PasswordHasher::new(2);
        let hash = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!hasher.verify("wrong".into(), Some(hash.clone())).await);
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!hasher.verify("x".into(), None).await);
        assert!(!hasher.verify("x".into(), Some("not a hash".into())).await);
        // Hashes made by the argon2 crate's own PHC path (earlier versions of shard) verify.
        use argon2::password_hash::PasswordHasher as _;
        let theirs = Argon2::default()
            .hash_password(b"old password")
            .unwrap()
            .to_string();
        assert!(hasher.verify("old password".into(), Some(theirs)).await);
    }
}
