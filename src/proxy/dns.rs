//! Custom-domain checks: what the configured resolver (or the system's) answers for a domain's
//! CNAME and for the TXT token at `_shard-challenge.<domain>`.

use std::net::{IpAddr, SocketAddr};

/// `1.1.1.1` or `127.0.0.1:5353` → the resolver's address (port 53 by default).
pub fn parse_resolver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}
