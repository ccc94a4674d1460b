//! Host figures for the admin overview and the Prometheus endpoint, read from `/proc` and
//! `statvfs` (Linux; `None` where unavailable).

use std::path::Path;

/// Free and total bytes of the filesystem holding `path`.
pub fn disk(path: &Path) -> (Option<u64>, Option<u64>) {
    match rustix::fs::statvfs(path) {
        Ok(s) => (
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
            Some(s.f_blocks.saturating_mul(s.f_frsize)),
        ),
        Err(_) => (None, None),
    }
}

/// A `<key>: <n> kB` line of a `/proc` file, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Total and available memory of the host.
pub fn memory() -> (Option<u64>, Option<u64>) {
    match std::fs::read_to_string("/proc/meminfo") {
        Ok(text) => (
            kib_field(&text, "MemTotal"),
            kib_field(&text, "MemAvailable"),
        ),
        Err(_) => (None, None),
    }
}

/// shard's own resident memory.
pub fn own_rss() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS")
}

/// What the engine says of itself and of shard's containers, for the overview (each `None`
/// when the engine does not answer).
pub struct EngineSummary {
    pub version: Option<String>,
    /// shard's app containers, and how many of them run.
    pub containers: Option<(usize, usize)>,
}

pub async fn engine(docker: &crate::docker::Engine) -> EngineSummary {
    let version = docker.version().await.ok();
    let containers = docker
        .managed_containers()
        .await
        .ok()
        .map(|c| (c.len(), c.iter().filter(|c| c.running).count()));
    EngineSummary {
        version,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_in_bytes() {
        let text = "MemTotal:       24567 kB\nMemFree:    100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(kib_field(text, "MemTotal"), Some(24567 * 1024));
        assert_eq!(kib_field(text, "MemAvailable"), Some(2048 * 1024));
        assert_eq!(kib_field(text, "Mem"), None);
        assert!(own_rss().unwrap() > 1024 * 1024);
    }
}
