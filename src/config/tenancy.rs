//! The `[quotas]` and `[domains]` sections: how much of the installation one user or one team
//! may take (projects, deploys, queued deploys, certificate orders, API requests), and how long
//! a custom domain may stay unverified before someone else may claim it.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// Per-user and per-team quotas; 0 means no limit. Instance admins are not held to the
/// project and deploy quotas (the API rate limit holds for everyone; certificate orders count
/// per team, whoever added the names). Past a quota the API answers 429 with `Retry-After`; a
/// certificate past its team's quota waits for the next hour, its domain saying so.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Projects a user may create (counted over every team).
    pub projects_per_user: u32,
    /// Projects one team may hold.
    pub projects_per_team: u32,
    /// Deploys (and rollbacks) a user may request in an hour.
    pub deploys_per_hour_per_user: u32,
    /// Deploys requested in an hour on one team's projects.
    pub deploys_per_hour_per_team: u32,
    /// Deploys of one team's projects waiting in the queue at once.
    pub queued_deploys_per_team: u32,
    /// Certificates (ACME orders) a team's domains may ask for in an hour.
    pub acme_orders_per_hour_per_team: u32,
    /// API requests one user (or one address, signed out) may make in a minute.
    pub api_requests_per_minute: u32,
    /// The largest file mount, in KiB.
    pub file_mount_kib: u32,
    /// File mounts one project may have.
    pub file_mounts_per_project: u32,
    /// The KiB all of one project's file mounts may hold together.
    pub file_mounts_kib_per_project: u32,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        Self {
            projects_per_user: 100,
            projects_per_team: 200,
            deploys_per_hour_per_user: 120,
            deploys_per_hour_per_team: 240,
            queued_deploys_per_team: 20,
            acme_orders_per_hour_per_team: 10,
            api_requests_per_minute: 1200,
            file_mount_kib: 1024,
            file_mounts_per_project: 50,
            file_mounts_kib_per_project: 8192,
        }
    }
}

/// Custom domains.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainsConfig {
    /// Days a domain may stay unverified; after that it is removed (maintenance), and anyone
    /// may add it again.
    pub pending_days: u32,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        Self { pending_days: 7 }
    }
}

impl Config {
    /// The checks of `[quotas]` and `[domains]` (part of `Config::validate`).
    pub(super) fn check_tenancy(&self) -> Result<(), ConfigError> {
        if self.domains.pending_days == 0 {
            return Err(ConfigError(
                "domains.pending_days: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
