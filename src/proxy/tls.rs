//! Certificates of the HTTPS listener, chosen per connection by SNI: a map from host name to
//! certificate, swapped whole when one is issued or renewed (no listener restart). Issued
//! certificates live in `<data_dir>/certs/<name>/` (key 0600); files named in
//! `proxy.certificates` are loaded beside them and win for their name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// One loaded certificate.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub expires_at: DateTime<Utc>,
    /// From `proxy.certificates` (never renewed by ACME).
    pub from_file: bool,
}

#[derive(Debug)]
pub struct Certificates {
    dir: PathBuf,
    by_name: ArcSwap<HashMap<String, Loaded>>,
}

impl Certificates {
    /// Loads every stored certificate, then the configured files; a broken one is logged and
    /// skipped so that one bad file never keeps the listener down.
    pub fn load(data_dir: &Path, files: &[crate::config::CertificateFiles]) -> Self {
        let dir = data_dir.join("certs");
        let mut by_name = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let path = entry.path();
                match read_pair(&path.join("cert.pem"), &path.join("key.pem"), false) {
                    Ok(loaded) => {
                        by_name.insert(name, loaded);
                    }
                    Err(e) => tracing::warn!(name, error = %e, "cannot load a stored certificate"),
                }
            }
        }
        for file in files {
            match read_pair(&file.cert_file, &file.key_file, true) {
                Ok(loaded) => {
                    by_name.insert(file.domain.to_ascii_lowercase(), loaded);
                }
                Err(e) => {
                    tracing::error!(domain = %file.domain, error = %e, "cannot load the configured certificate")
                }
            }
        }
        Self {
            dir,
            by_name: ArcSwap::from_pointee(by_name),
        }
    }

    /// The certificate for `name` (exact, then a wildcard one level up).
    pub fn get(&self, name: &str) -> Option<Loaded> {
        let map = self.by_name.load();
        map.get(name)
            .or_else(|| map.get(&super::hosts::wildcard_of(name)?))
            .cloned()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Stores an issued certificate (key file 0600) and serves it from now on.
    pub fn install(&self, name: &str, chain_pem: &str, key_pem: &str) -> anyhow::Result<Loaded> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let key_path = dir.join("key.pem");
        let cert_path = dir.join("cert.pem");
        // Written to new files and renamed, so a crash never leaves half a pair.
        crate::secrets::write_private_file(&dir.join("key.pem.new"), key_pem.as_bytes())?;
        crate::secrets::write_private_file(&dir.join("cert.pem.new"), chain_pem.as_bytes())?;
        let loaded = read_pair(&dir.join("cert.pem.new"), &dir.join("key.pem.new"), false)?;
        std::fs::rename(dir.join("key.pem.new"), &key_path)?;
        std::fs::rename(dir.join("cert.pem.new"), &cert_path)?;
        let mut map = HashMap::clone(&self.by_name.load());
        map.insert(name.to_string(), loaded.clone());
        self.by_name.store(Arc::new(map));
        Ok(loaded)
    }

    /// Names of the certificates ACME issued (not the configured files).
    pub fn issued_names(&self) -> Vec<String> {
        self.by_name
            .load()
            .iter()
            .filter(|(_, c)| !c.from_file)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Stops serving an issued certificate and deletes its files (a configured file stays).
    pub fn remove(&self, name: &str) {
        let map = self.by_name.load();
        if map.get(name).is_none_or(|c| c.from_file) {
            return;
        }
        let mut map = HashMap::clone(&map);
        map.remove(name);
        self.by_name.store(Arc::new(map));
        let _ = std::fs::remove_dir_all(self.dir.join(name));
    }

    /// The rustls configuration of the HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN).
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.get(&name).map(|loaded| loaded.key)
    }
}

fn read_pair(cert: &Path, key_file: &Path, from_file: bool) -> anyhow::Result<Loaded> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    let first = chain
        .first()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let expires_at = not_after(first)?;
    let key_der = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("cannot read the private key {}", key_file.display()))?;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|e| anyhow::anyhow!("unsupported private key in {}: {e}", key_file.display()))?;
    let key = Arc::new(CertifiedKey::new(chain, signer));
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        key.keys_match()
    {
        anyhow::bail!(
            "the key {} does not belong to the certificate {}",
            key_file.display(),
            cert.display()
        );
    }
    Ok(Loaded {
        key,
        expires_at,
        from_file,
    })
}

/// When the first certificate of a PEM file stops being valid.
pub fn file_expiry(path: &Path) -> anyhow::Result<DateTime<Utc>> {
    let first = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .next()
        .with_context(|| format!("{} holds no certificate", path.display()))?
        .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
    not_after(&first)
}

/// When a certificate stops being valid.
pub fn not_after(cert: &CertificateDer<'_>) -> anyhow::Result<DateTime<Utc>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| anyhow::anyhow!("cannot parse the certificate: {e}"))?;
    let ts = parsed.validity().not_after.timestamp();
    DateTime::from_timestamp(ts, 0).context("certificate expiry out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_is_removed_with_its_files() {
        let dir = tempfile::TempDir::new().unwrap();
        let made =
            rcgen::generate_simple_self_signed(vec!["pr-3-blog.example.com".into()]).unwrap();
        let (chain, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let certs = Certificates::load(dir.path(), &[]);
        certs
            .install("pr-3-blog.example.com", &chain, &key)
            .unwrap();
        assert_eq!(
            certs.issued_names(),
            vec!["pr-3-blog.example.com".to_string()]
        );
        assert!(
            dir.path()
                .join("certs/pr-3-blog.example.com/cert.pem")
                .exists()
        );
        certs.remove("pr-3-blog.example.com");
        assert!(!certs.has("pr-3-blog.example.com"));
        assert!(!dir.path().join("certs/pr-3-blog.example.com").exists());
        // Loaded again from disk: gone for good.
        assert!(
            Certificates::load(dir.path(), &[])
                .issued_names()
                .is_empty()
        );
    }
}
