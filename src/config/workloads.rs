//! The `[deploy]` and `[containers]` sections: what a deploy may take (time, checkout size,
//! log lines, the build's memory, CPU and processes) and what every app container gets.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Seconds the previous version keeps running (draining) after a new one goes live.
    pub grace_secs: u64,
    /// Images of this many recent deployments per project are kept for rollback.
    pub keep_images: usize,
    /// A git fetch taking longer fails the deploy.
    pub fetch_timeout_secs: u64,
    /// A checkout larger than this (MiB, without `.git`) fails the deploy.
    pub max_checkout_mb: u64,
    /// Largest static site copied out of an image, in MiB.
    pub max_site_mb: u64,
    /// An image build taking longer fails the deploy.
    pub build_timeout_secs: u64,
    /// Build and runtime log lines longer than this are cut with a marker.
    pub max_log_line_bytes: usize,
    /// Output lines persisted per deployment; later ones are dropped after a notice.
    pub max_log_lines: u64,
    /// Memory of each build step, MiB (no swap beyond it); 0 means no limit.
    pub build_memory_mb: u64,
    /// CPU of each build step, in thousandths of a CPU; 0 means all the host's CPUs but one
    /// (at least one), so a build never starves the apps.
    pub build_cpu_millis: u64,
    /// Processes and threads of a whole build together (a fork bomb stops there); 0 means no
    /// limit.
    pub build_pids: u64,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            grace_secs: 10,
            keep_images: 5,
            fetch_timeout_secs: 600,
            max_checkout_mb: 2048,
            max_site_mb: 1024,
            build_timeout_secs: 1800,
            max_log_line_bytes: 16 * 1024,
            max_log_lines: 50_000,
            build_memory_mb: 2048,
            build_cpu_millis: 0,
            build_pids: 1024,
        }
    }
}

/// What every app container gets unless its project asks for other limits (within the
/// `max_*` values set here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainersConfig {
    pub memory_mb: i64,
    pub cpu_millis: i64,
    /// Processes (and threads) a container may run.
    pub pids_limit: i64,
    /// Docker's json-file log of a container: size of one file and files kept.
    pub log_max_size_mb: u32,
    pub log_max_files: u32,
    /// The most a project may ask for.
    pub max_memory_mb: i64,
    pub max_cpu_millis: i64,
    /// Address block the per-project networks take their subnets from (each a `/network_prefix`).
    pub network_pool: String,
    pub network_prefix: u8,
}

impl ContainersConfig {
    /// The parsed `network_pool` (checked at load).
    pub fn subnets(&self) -> super::SubnetPool {
        super::SubnetPool::parse(&self.network_pool, self.network_prefix).unwrap_or_else(|_| {
            super::SubnetPool::parse("10.213.0.0/16", 26).expect("a valid default")
        })
    }
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            memory_mb: 512,
            cpu_millis: 1000,
            pids_limit: 512,
            log_max_size_mb: 10,
            log_max_files: 3,
            max_memory_mb: 16 * 1024,
            max_cpu_millis: 16_000,
            network_pool: "10.213.0.0/16".into(),
            network_prefix: 26,
        }
    }
}

/// `[exec]`: terminals in app containers (`GET /api/v1/projects/{id}/exec`, `shard exec`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecConfig {
    /// The shell started when the client names none.
    pub shell: String,
    /// A terminal nobody typed into for this long is closed.
    pub idle_secs: u64,
    /// Terminals one user may have open at once (on this instance).
    pub sessions_per_user: usize,
    /// Output bytes per second sent to one terminal; a faster process waits.
    pub bytes_per_sec: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        Self {
            shell: "/bin/sh".into(),
            idle_secs: 900,
            sessions_per_user: 3,
            bytes_per_sec: 1024 * 1024,
        }
    }
}

/// `[previews]`: pull-request previews (a project turns them on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreviewsConfig {
    /// How often closed, expired and orphaned previews are looked for (seconds).
    pub reconcile_secs: u64,
    /// A preview's memory (MiB) and CPU (thousandths of a CPU) at most, below production's.
    pub memory_mb: i64,
    pub cpu_millis: i64,
    /// The largest `ttl_days` and `max` a project may set.
    pub max_ttl_days: i32,
    pub max_per_project: i32,
}

impl Default for PreviewsConfig {
    fn default() -> Self {
        Self {
            reconcile_secs: 30,
            memory_mb: 256,
            cpu_millis: 500,
            max_ttl_days: 90,
            max_per_project: 20,
        }
    }
}
