//! Custom-domain checks: what the configured resolver (or the system's) answers for a domain's
//! CNAME and for the TXT token at `_shard-challenge.<domain>`.

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

/// Where a domain's DNS stands, as far as shard's checks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    /// The CNAME targets of the domain (lower case, no trailing dot).
    pub cnames: Vec<String>,
    /// The TXT values at `_shard-challenge.<domain>`.
    pub tokens: Vec<String>,
}

/// The TXT record name that proves control of `domain`.
pub fn challenge_name(domain: &str) -> String {
    format!("_shard-challenge.{}", domain.trim_start_matches("*."))
}

/// Asks the configured resolver (no cache: every check sees what DNS says now).
pub struct Checker {
    resolver: TokioResolver,
}

impl Checker {
    pub fn new(resolver: Option<&str>) -> anyhow::Result<Self> {
        let builder = match resolver.filter(|r| !r.trim().is_empty()) {
            Some(text) => {
                let addr = crate::config::parse_resolver(text)
                    .ok_or_else(|| anyhow::anyhow!("dns.resolver {text:?} is not an address"))?;
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio()
                .map_err(|e| anyhow::anyhow!("cannot read the system's DNS configuration: {e}"))?,
        };
        let mut builder = builder;
        let options = builder.options_mut();
        options.cache_size = 0;
        options.attempts = 2;
        options.timeout = std::time::Duration::from_secs(3);
        let resolver = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the DNS resolver: {e}"))?;
        Ok(Self { resolver })
    }

    /// The CNAMEs of `domain` and the TXT values at its challenge name. A name that does not
    /// exist answers nothing; a resolver that cannot be reached is an error.
    pub async fn answers(&self, domain: &str) -> Result<Answers, String> {
        let probe = domain.trim_start_matches("*.").replace('*', "x");
        let name = format!("{probe}.");
        let cnames = self
            .records(&name, RecordType::CNAME)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::CNAME(target) => Some(
                    target
                        .to_string()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                ),
                _ => None,
            })
            .collect();
        let tokens = self
            .records(&format!("{}.", challenge_name(domain)), RecordType::TXT)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(txt.to_string()),
                _ => None,
            })
            .collect();
        Ok(Answers { cnames, tokens })
    }

    async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<RData>, String> {
        match self.resolver.lookup(name, kind).await {
            Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(format!("the DNS resolver did not answer for {name}: {e}")),
        }
    }
}
