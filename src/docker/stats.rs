//! Container resource counters: one Docker stats reading (one-shot, no two-cycle wait) and the
//! container's restart count. CPU % needs two readings; `cpu_percent` works it out from the
//! previous one the caller kept.

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, EngineError, is_not_found};

/// Counters of one container at one moment (cumulative ones since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsReading {
    /// CPU time the container used, in nanoseconds.
    pub cpu_total_ns: u64,
    /// CPU time the whole host used, in nanoseconds (the denominator of CPU %).
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, page cache that could be dropped left out (what `docker stats` shows).
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub restart_count: i64,
}

impl StatsReading {
    /// CPU use between `before` and `self`, as a percentage of one CPU (200 % is two busy
    /// CPUs), like `docker stats`. `None` without a usable previous reading.
    pub fn cpu_percent(&self, before: &StatsReading) -> Option<f64> {
        let cpu = self.cpu_total_ns.checked_sub(before.cpu_total_ns)?;
        let system = self.system_cpu_ns.checked_sub(before.system_cpu_ns)?;
        if system == 0 || before.system_cpu_ns == 0 {
            return None;
        }
        Some(cpu as f64 / system as f64 * f64::from(self.online_cpus.max(1)) * 100.0)
    }

    /// Adds another replica's sizes and counters to this one (a service's sum on this
    /// machine); the CPU fields are left alone, CPU % being summed by the caller.
    pub fn add(&mut self, other: &StatsReading) {
        self.memory_bytes += other.memory_bytes;
        self.memory_limit_bytes += other.memory_limit_bytes;
        self.net_rx_bytes += other.net_rx_bytes;
        self.net_tx_bytes += other.net_tx_bytes;
        self.block_read_bytes += other.block_read_bytes;
        self.block_write_bytes += other.block_write_bytes;
        self.restart_count += other.restart_count;
    }
}

impl Engine {
    /// One reading of a container's counters; `None` when it does not exist or is not running.
    pub async fn stats(&self, id: &str) -> Result<Option<StatsReading>, EngineError> {
        let docker = self.client().await?;
        let options = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = docker.stats(id, Some(options));
        let stats = match stream.next().await {
            Some(Ok(stats)) => stats,
            Some(Err(e)) if is_not_found(&e) => return Ok(None),
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(None),
        };
        let restart_count = match docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(inspect) => {
                if !inspect.state.and_then(|s| s.running).unwrap_or(false) {
                    return Ok(None);
                }
                inspect.restart_count.unwrap_or(0)
            }
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let cpu = stats.cpu_stats.unwrap_or_default();
        let memory = stats.memory_stats.unwrap_or_default();
        // Page cache the kernel can reclaim is not the app's memory (cgroup v1 and v2 names).
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("total_inactive_file")
                    .or_else(|| s.get("inactive_file"))
                    .copied()
            })
            .unwrap_or(0);
        let (net_rx_bytes, net_tx_bytes) =
            stats
                .networks
                .unwrap_or_default()
                .values()
                .fold((0u64, 0u64), |(rx, tx), n| {
                    (
                        rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                        tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                    )
                });
        let (block_read_bytes, block_write_bytes) = stats
            .blkio_stats
            .and_then(|b| b.io_service_bytes_recursive)
            .unwrap_or_default()
            .iter()
            .fold((0u64, 0u64), |(r, w), e| {
                match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    Some("read") => (r.saturating_add(e.value.unwrap_or(0)), w),
                    Some("write") => (r, w.saturating_add(e.value.unwrap_or(0))),
                    _ => (r, w),
                }
            });
        Ok(Some(StatsReading {
            cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: cpu.online_cpus.unwrap_or(1),
            memory_bytes: memory.usage.unwrap_or(0).saturating_sub(cache),
            memory_limit_bytes: memory.limit.unwrap_or(0),
            net_rx_bytes,
            net_tx_bytes,
            block_read_bytes,
            block_write_bytes,
            restart_count,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_the_share_of_host_time_times_the_cpus() {
        let before = StatsReading {
            cpu_total_ns: 1_000,
            system_cpu_ns: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        let after = StatsReading {
            cpu_total_ns: 6_000,
            system_cpu_ns: 20_000,
            online_cpus: 2,
            ..Default::default()
        };
        // Half of all host time on a two-CPU host: one CPU busy.
        assert_eq!(after.cpu_percent(&before), Some(100.0));
        // A restarted container's counters go back: no figure rather than a wrong one.
        assert_eq!(before.cpu_percent(&after), None);
        assert_eq!(after.cpu_percent(&StatsReading::default()), None);
    }
}
