//! Per-project bridge networks, with subnets from shard's own pool (Docker's default pools
//! hold only about 30 networks).

use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, is_not_found};

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

impl Engine {
    /// Creates (if missing) the project's own bridge network, so apps of different projects
    /// cannot reach each other's containers. Returns its name. Its subnet is a block of
    /// `subnets` (Docker's default pools hold only about 30 networks); a block another network
    /// already uses is skipped.
    pub async fn ensure_network(
        &self,
        project: Uuid,
        subnets: &SubnetPool,
    ) -> Result<String, EngineError> {
        let docker = self.client().await?;
        let name = format!("shard-{}", project.simple());
        match docker
            .inspect_network(
                &name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let mut labels = self.labels(project, Uuid::nil());
        labels.remove(LABEL_DEPLOYMENT);
        let blocks = subnets.blocks();
        let start = (project.as_u128() % u128::from(blocks)) as u32;
        let mut last_error = None;
        for attempt in 0..blocks.min(256) {
            let subnet = subnets.block((start + attempt) % blocks);
            let request = bollard::models::NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(labels.clone()),
                ipam: Some(bollard::models::Ipam {
                    driver: Some("default".into()),
                    config: Some(vec![bollard::models::IpamConfig {
                        subnet: Some(subnet),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => return Ok(name),
                // Created meanwhile by a concurrent deploy of the same project.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 409, ..
                }) => return Ok(name),
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("overlap") =>
                {
                    last_error = Some(message);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: format!(
                "no free subnet for the project's network in {subnets} ({})",
                last_error.unwrap_or_default()
            ),
        })
    }
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
}
