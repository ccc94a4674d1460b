//! The config sections of serving apps: the proxy and its HTTPS listener, ACME, and the DNS
//! resolver that custom-domain checks ask. Kept apart from the engine's sections.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// The app proxy on the shared listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Largest request body forwarded to an app.
    pub max_body_mb: u64,
    /// Seconds to open a connection to an app container.
    pub connect_timeout_secs: u64,
    /// Seconds an app has to start answering (its response headers); bodies may stream longer.
    pub response_timeout_secs: u64,
    /// Seconds an idle pooled connection to an app is kept open.
    pub upstream_idle_secs: u64,
    /// Largest WebSocket frame relayed, in KiB.
    pub max_websocket_frame_kb: usize,
    /// A second listener for HTTPS (SNI; HTTP/2 and HTTP/1.1), e.g. `0.0.0.0:443`. With it,
    /// plain HTTP redirects to HTTPS for names that have a certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_listen: Option<SocketAddr>,
    /// Certificate files given per domain (they win over ACME for their name).
    pub certificates: Vec<CertificateFiles>,
}

/// A certificate chain and its key, as PEM files, for one host name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    pub domain: String,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Automatic certificates (ACME HTTP-01) for the HTTPS listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`; unset: no ACME.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory_url: Option<String>,
    /// Contact address given to the CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// PEM file of the CA that signs the ACME server's own HTTPS certificate (a private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Renew a certificate this many days before it expires.
    pub renew_before_days: u64,
    /// Seconds between checks of every certificate (also run when a domain is verified).
    pub check_interval_secs: u64,
    /// Seconds before a name whose order failed is tried again.
    pub retry_after_secs: u64,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory_url: None,
            email: None,
            ca_file: None,
            renew_before_days: 30,
            check_interval_secs: 3600,
            retry_after_secs: 3600,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            max_body_mb: 100,
            connect_timeout_secs: 5,
            response_timeout_secs: 60,
            upstream_idle_secs: 60,
            max_websocket_frame_kb: 1024,
            https_listen: None,
            certificates: Vec::new(),
        }
    }
}

/// How custom domains are checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// The resolver asked when verifying a domain (`IP` or `IP:PORT`); empty means the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolver: Option<String>,
}

fn bad(key: &str, why: &str) -> ConfigError {
    ConfigError(format!("{key}: {why}"))
}

impl Config {
    /// The checks of the serving sections (part of `Config::validate`).
    pub(super) fn check_serving(&self) -> Result<(), ConfigError> {
        let p = &self.proxy;
        if p.max_body_mb == 0 || p.connect_timeout_secs == 0 || p.response_timeout_secs == 0 {
            return Err(bad(
                "proxy.max_body_mb",
                "proxy body limit and timeouts must be at least 1",
            ));
        }
        if !(1..=65536).contains(&p.max_websocket_frame_kb) {
            return Err(bad(
                "proxy.max_websocket_frame_kb",
                "must be between 1 and 65536",
            ));
        }
        if self.acme.directory_url.is_some() && self.proxy.https_listen.is_none() {
            return Err(bad(
                "acme.directory_url",
                "needs proxy.https_listen (certificates are served there)",
            ));
        }
        if self.acme.check_interval_secs == 0 || self.acme.retry_after_secs == 0 {
            return Err(bad(
                "acme.check_interval_secs",
                "ACME check and retry intervals must be at least 1 second",
            ));
        }
        for c in &self.proxy.certificates {
            if let Err(why) = super::custom_domain(&c.domain) {
                return Err(bad("proxy.certificates", &format!("{}: {why}", c.domain)));
            }
        }
        if let Some(resolver) = self.dns.resolver.as_deref().filter(|r| !r.is_empty())
            && super::parse_resolver(resolver).is_none()
        {
            return Err(bad(
                "dns.resolver",
                "must be an IP address, optionally with :PORT",
            ));
        }
        Ok(())
    }
}
