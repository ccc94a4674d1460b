//! Which host names are the dashboard's, and the one normal form of a `Host` value that the
//! route table is keyed by (lower case, no port, no trailing dot).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

/// The dashboard's host names: the host of `public_url`, the listen address, `localhost` and
/// the loopback addresses. When shard listens on every interface, any IP literal is the
/// dashboard too (a VPS reached by its address before DNS is set up).
#[derive(Debug, Clone)]
pub struct DashboardHosts {
    names: HashSet<String>,
    any_ip: bool,
}

impl DashboardHosts {
    pub fn new(listen: SocketAddr, public_url: Option<&str>) -> Self {
        let mut names: HashSet<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(String::from)
            .collect();
        names.insert(listen.ip().to_string());
        if let Some(host) = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_string))
            && let Some(host) = normalize(&host)
        {
            names.insert(host.into_owned());
        }
        Self {
            names,
            any_ip: listen.ip().is_unspecified(),
        }
    }

    /// True for a normalised host that is the dashboard's.
    pub fn contains(&self, host: &str) -> bool {
        self.names.contains(host) || (self.any_ip && host.parse::<IpAddr>().is_ok())
    }
}

/// `Blog.Example.COM.:8080` → `blog.example.com`; `[::1]:8080` → `::1`. None for a value that
/// cannot be a host name.
pub fn normalize(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        rest.split_once(']')?.0
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(host))
    }
}

/// The wildcard name that covers `host` one level up: `a.example.com` → `*.example.com`.
pub fn wildcard_of(host: &str) -> Option<String> {
    let parent = host.split_once('.')?.1;
    Some(format!("*.{parent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_forms() {
        assert_eq!(
            normalize("Blog.Localhost:8080").as_deref(),
            Some("blog.localhost")
        );
        assert_eq!(normalize("example.com.").as_deref(), Some("example.com"));
        assert_eq!(normalize("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(normalize("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize(":80"), None);
        assert_eq!(normalize("[::1"), None);
    }

    #[test]
    fn dashboard_hosts() {
        let local = DashboardHosts::new("127.0.0.1:8080".parse().unwrap(), None);
        assert!(local.contains("localhost") && local.contains("127.0.0.1"));
        assert!(!local.contains("blog.localhost"));
        assert!(!local.contains("10.0.0.5"));
        let public = DashboardHosts::new(
            "0.0.0.0:443".parse().unwrap(),
            Some("https://Shard.Example.com"),
        );
        assert!(public.contains("shard.example.com"));
        assert!(
            public.contains("203.0.113.9"),
            "any address when listening everywhere"
        );
        assert!(!public.contains("app.example.com"));
    }
}
