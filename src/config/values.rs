//! The parsers of values config holds, so config checks them itself and imports nothing of
//! shard: the network address pool, DNS resolver addresses, the secret key, and DNS names.

use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The address block project networks take their subnets from: `base/len` split into blocks
/// of `/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    base: u32,
    len: u8,
    prefix: u8,
}

impl SubnetPool {
    /// `pool` as `a.b.c.d/len`; `prefix` the size of each network's block (`len < prefix ≤ 29`).
    pub fn parse(pool: &str, prefix: u8) -> Result<SubnetPool, String> {
        let (addr, len) = pool
            .split_once('/')
            .ok_or_else(|| format!("'{pool}' is not a.b.c.d/len"))?;
        let addr: std::net::Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 address"))?;
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| (8..=28).contains(l))
            .ok_or_else(|| format!("prefix length '/{len}' must be between 8 and 28"))?;
        if !(len < prefix && prefix <= 29) {
            return Err(format!(
                "network prefix /{prefix} must be longer than the pool's /{len} and at most /29"
            ));
        }
        let mask = u32::MAX << (32 - len);
        Ok(SubnetPool {
            base: u32::from(addr) & mask,
            len,
            prefix,
        })
    }

    /// How many networks fit.
    pub fn blocks(&self) -> u32 {
        1 << (self.prefix - self.len)
    }

    /// Block `n` as `a.b.c.d/prefix`.
    pub fn block(&self, n: u32) -> String {
        let addr = self.base + ((n % self.blocks()) << (32 - self.prefix));
        format!("{}/{}", std::net::Ipv4Addr::from(addr), self.prefix)
    }
}

impl std::fmt::Display for SubnetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.len)
    }
}

/// Parses a 32-byte key given as 64 hex characters or standard base64.
pub fn parse_secret_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        STANDARD.decode(text).ok()?
    };
    bytes.try_into().ok()
}

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

/// A lowercase DNS label: 1–63 of `a-z 0-9 -`, not starting or ending with `-`.
pub fn dns_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may only contain lowercase letters, digits and '-'".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must not start or end with '-'".into());
    }
    Ok(())
}

/// A DNS name: dot-separated labels of `a-z 0-9 -`, at most 253 characters.
pub fn domain(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    for label in value.split('.') {
        dns_label(label).map_err(|why| format!("label '{label}' {why}"))?;
    }
    Ok(())
}

/// A custom domain as users type it → its normal form (lower case, no trailing dot), if it
/// is a real public host name: at least two labels, letters in the top-level one (so never an
/// IP address), and `*.` only as the whole first label.
pub fn custom_domain(value: &str) -> Result<String, String> {
    let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("must be a host name of 1 to 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("must be a full domain such as app.example.com".into());
    }
    for (i, label) in labels.iter().enumerate() {
        if i == 0 && *label == "*" {
            continue;
        }
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "label '{label}' must be 1 to 63 letters, digits or inner hyphens"
            ));
        }
    }
    let tld = labels[labels.len() - 1];
    if !tld.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must be a domain name, not an address".into());
    }
    if labels[0] == "*" && labels.len() < 3 {
        return Err("a wildcard must sit under a domain such as *.example.com".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_pools_split_into_blocks() {
        let pool = SubnetPool::parse("10.213.0.0/16", 26).unwrap();
        assert_eq!(pool.blocks(), 1024);
        assert_eq!(pool.block(0), "10.213.0.0/26");
        assert_eq!(pool.block(1), "10.213.0.64/26");
        assert_eq!(pool.block(1023), "10.213.255.192/26");
        assert_eq!(pool.block(1024), "10.213.0.0/26");
        assert_eq!(pool.to_string(), "10.213.0.0/16");
        assert!(SubnetPool::parse("10.213.0.0/16", 16).is_err());
        assert!(SubnetPool::parse("10.213.0.0/16", 30).is_err());
        assert!(SubnetPool::parse("10.213.0.0", 26).is_err());
        assert!(SubnetPool::parse("banana/16", 26).is_err());
    }

    #[test]
    fn key_parsing_accepts_hex_and_base64_only_of_32_bytes() {
        let hex_key = "ab".repeat(32);
        assert_eq!(parse_secret_key(&hex_key), Some([0xab; 32]));
        assert_eq!(
            parse_secret_key(&STANDARD.encode([1u8; 32])),
            Some([1u8; 32])
        );
        assert_eq!(parse_secret_key("short"), None);
        assert_eq!(parse_secret_key(&STANDARD.encode([1u8; 16])), None);
    }
}
