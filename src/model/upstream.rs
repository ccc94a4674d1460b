//! Where a deployment is reached, as stored in `deployments.upstream`: an address
//! (`127.0.0.1:<port>`), `static` (shard serves its files) or `swarm` (its replicas, found
//! through the Swarm runtime). The markers are the stored text; code compares `Upstream`s.

/// The stored marker of a static site.
pub const STATIC: &str = "static";
/// The stored marker of a Swarm service's replicas.
pub const REPLICAS: &str = "swarm";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream<'a> {
    /// `host:port` of a container.
    Addr(&'a str),
    /// shard serves the deployment's files.
    Static,
    /// The Swarm service's running replicas.
    Replicas,
}

impl<'a> Upstream<'a> {
    pub fn parse(stored: &'a str) -> Self {
        match stored {
            STATIC => Upstream::Static,
            REPLICAS => Upstream::Replicas,
            addr => Upstream::Addr(addr),
        }
    }

    /// The text stored for it.
    pub fn as_stored(&self) -> &'a str {
        match self {
            Upstream::Addr(addr) => addr,
            Upstream::Static => STATIC,
            Upstream::Replicas => REPLICAS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_and_addresses_round_trip() {
        for stored in ["static", "swarm", "127.0.0.1:49153"] {
            assert_eq!(Upstream::parse(stored).as_stored(), stored);
        }
        assert_eq!(Upstream::parse("static"), Upstream::Static);
        assert_eq!(Upstream::parse("swarm"), Upstream::Replicas);
        assert_eq!(
            Upstream::parse("127.0.0.1:1"),
            Upstream::Addr("127.0.0.1:1")
        );
    }
}
