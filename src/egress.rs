//! Requests shard makes on a user's behalf (git fetches, notification webhooks, Slack and
//! Discord) must not reach into the host's own networks (loopback, private ranges,
//! link-local — cloud metadata lives there). The rule holds at connect time: `Guard` is the
//! HTTP client's resolver, so a name is resolved once, every address is checked, and the
//! client connects to exactly the addresses checked (a name that rebinds between a check and
//! the connection gets nowhere). A name that does not resolve is refused. URLs an instance admin
//! set, and every URL when `git.allow_private_networks` is on (single-user installs), are
//! trusted and go through the normal resolver. When a URL is saved, a private address is
//! refused at once; a name that does not resolve yet is accepted and refused at use.
//!
//! # Hostile tenants
//!
//! Every user has a personal team and may deploy, so shard treats what a member sets as hostile:
//!
//! - Credentials are bound to where they were given for. A `SHARD_GIT_TOKEN` is sent only to the
//!   origin (scheme, host, port) of the git URL it was saved with (`env_vars.bound_host`); an
//!   imported project's GitHub token only to the origin of the clone URL GitHub named
//!   (`projects.github_origin`). Changing `git_url` unlinks the GitHub import (its webhook is
//!   removed) and deletes a token saved for another origin; the project then deploys without
//!   credentials until they are given again. A secret turns plain only with a new value.
//! - One outbound guard (`egress::Guard`) is the resolver of every HTTP client that fetches for a
//!   user (git through gix's reqwest transport, notification webhooks, Slack, Discord): a name is
//!   resolved once, every address is checked, the connection goes to exactly those addresses, a
//!   name that does not resolve is refused; no redirect is followed. It applies by who set the
//!   URL (`projects.git_url_trusted`, the channel's creator), not who created the project; an
//!   admin's URLs and `git.allow_private_networks` skip it. A member's delivery error says
//!   "refused" or "the delivery failed", never what answered.
//! - The dashboard is never framed (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'` with
//!   `script-src 'self'` and no inline script, `nosniff`, `Referrer-Policy`), and a CLI sign-in is
//!   approved only by typing the code the terminal shows (the link carries none).
//! - Builds run under limits like apps (`[deploy] build_memory_mb`, `build_cpu_millis`,
//!   `build_pids`); a checkout bomb is refused before it reaches the disk; the context never sits
//!   in memory.
//! - Narrowed tokens stay in their projects (no `user:` topic, no GitHub lists); a project's
//!   notices go to its team's owners, admins and members through their own channels; runtime
//!   logs are masked like build logs.
//! - Names: preview-shaped slugs are refused; unverified domains expire; quotas answer 429 with
//!   `Retry-After`; `/metrics` needs `metrics.token` once `http.trusted_proxies` is set; a webhook
//!   secret can be rotated (`POST /projects/{id}/webhook/rotate`, GitHub's hook first).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The origin (`scheme://host:port`) a URL's credentials belong to, or `None` when `url` is
/// not an absolute URL with a host.
pub fn origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let port = parsed.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", parsed.scheme()))
}

/// True for addresses a tenant's fetch must not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || a == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// How long a name may take to resolve.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a destination is refused, in words for the person who set it.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(
        "points at {0}, a loopback, private or link-local address; only an admin may use such a destination (or set git.allow_private_networks)"
    )]
    Private(IpAddr),
    #[error("names a host that does not resolve ({0})")]
    Unresolved(String),
    #[error("is not a usable URL: {0}")]
    Url(String),
}

/// Resolves `name` and checks every address; answers them all, or why not.
pub async fn resolve_public(name: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let lookup = tokio::net::lookup_host((name.to_string(), port));
    let found: Vec<SocketAddr> = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found.collect(),
        _ => return Err(Refused::Unresolved(name.to_string())),
    };
    if found.is_empty() {
        return Err(Refused::Unresolved(name.to_string()));
    }
    match found.iter().find(|a| is_private(a.ip())) {
        Some(a) => Err(Refused::Private(a.ip())),
        None => Ok(found),
    }
}

/// Refuses `url` when its host is, or resolves to, a private address, or does not resolve.
/// A check made before a request is saved; the request itself goes through `Guard`.
pub async fn check_public(url: &str) -> Result<(), Refused> {
    check_literal(url)?;
    let parsed = url::Url::parse(url).map_err(|e| Refused::Url(e.to_string()))?;
    match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let port = parsed.port_or_known_default().unwrap_or(443);
            resolve_public(name, port).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// The check when a URL is saved: private addresses are refused; a name that does not resolve
/// yet is accepted (its DNS may not be set up yet), because nothing connects to it except
/// through `Guard`, which refuses it then.
pub async fn check_saved(url: &str) -> Result<(), Refused> {
    match check_public(url).await {
        Err(Refused::Unresolved(_)) => Ok(()),
        other => other,
    }
}

/// An address literal in a URL is connected to without a lookup, so it is checked apart.
pub fn check_literal(url: &str) -> Result<(), Refused> {
    let parsed = url::Url::parse(url).map_err(|e| Refused::Url(e.to_string()))?;
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => check_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => check_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err(Refused::Url("it has no host".into())),
    }
}

fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    if is_private(ip) {
        Err(Refused::Private(ip))
    } else {
        Ok(())
    }
}

/// The resolver of every HTTP client that fetches for a user: public addresses only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Guard;

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        Box::pin(async move {
            // The port is the client's to set; 0 here is replaced by the request's.
            let found = resolve_public(&name, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `err` (anywhere in its chain) is the guard refusing a destination.
pub fn refusal<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_scheme_host_and_port() {
        assert_eq!(
            origin("https://GitHub.com/a/b.git").as_deref(),
            Some("https://github.com:443")
        );
        assert_eq!(
            origin("http://git.example:8080/x").as_deref(),
            Some("http://git.example:8080")
        );
        assert_ne!(
            origin("http://github.com/a"),
            origin("https://github.com/a")
        );
        assert_eq!(origin("not a url"), None);
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["140.82.112.3", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_that_do_not_resolve_are_refused() {
        let refused = check_public("https://no-such-host.invalid/a.git").await;
        assert!(
            matches!(refused, Err(Refused::Unresolved(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn the_guard_resolves_only_to_public_addresses() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = Guard
            .resolve(name)
            .await
            .err()
            .expect("localhost is refused");
        assert!(matches!(
            refusal(refused.as_ref()),
            Some(Refused::Private(_))
        ));
        // A client with the guard never connects to loopback by name.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(Guard))
            .build()
            .unwrap();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(refusal(&err).is_some(), "{err:?}");
    }

    #[tokio::test]
    async fn literal_and_resolved_hosts_are_checked() {
        assert!(check_public("http://127.0.0.1:8080/a.git").await.is_err());
        assert!(check_public("http://[::1]/a.git").await.is_err());
        assert!(check_public("http://localhost/a.git").await.is_err());
        assert!(
            check_public("https://169.254.169.254/latest")
                .await
                .is_err()
        );
        assert!(check_public("https://140.82.112.3/a.git").await.is_ok());
    }
}
