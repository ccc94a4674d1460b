//! Where a project's code may come from. A member's git URL must not reach into the host's
//! own networks (loopback, private ranges, link-local — cloud metadata lives there): shard
//! would otherwise fetch from inside the trust boundary on a tenant's behalf. Admins may, and
//! `git.allow_private_networks` lifts the rule for everyone (single-user installs).

use std::net::IpAddr;
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

/// Refuses `url` when its host is, or resolves to, a private address. A host that does not
/// resolve now is let through (the fetch will fail on it, and checks again first).
pub async fn check_public(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a URL: {e}"))?;
    let Some(host) = parsed.host() else {
        return Err("has no host".into());
    };
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => {
            let lookup = tokio::net::lookup_host((name.to_string(), port));
            match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                _ => return Ok(()),
            }
        }
    };
    match addresses.into_iter().find(|ip| is_private(*ip)) {
        Some(ip) => Err(format!(
            "points at {ip}, a loopback, private or link-local address; only an admin may use \
             such a source (or set git.allow_private_networks)"
        )),
        None => Ok(()),
    }
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
