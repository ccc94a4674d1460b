//! The `[retention]` section: how long finished things are kept before the hourly maintenance
//! job removes them.

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// How long finished things are kept; maintenance (hourly) removes older ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Build logs of deployments that ended this many days ago (the deployments stay).
    pub deployment_logs_days: u32,
    /// Finished jobs.
    pub jobs_days: u32,
    /// Audit entries.
    pub audit_days: u32,
    /// Events of `project:` and `user:` topics.
    pub topic_events_days: u32,
    /// Received GitHub webhook deliveries (the ids that make a redelivery a no-op).
    pub webhook_deliveries_days: u32,
    /// Notification deliveries (and their attempts) of the notification channels.
    pub notification_deliveries_days: u32,
    /// Volumes a deleted project left (detached) are removed with their data this long after.
    pub detached_volumes_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            deployment_logs_days: 30,
            jobs_days: 7,
            audit_days: 180,
            topic_events_days: 30,
            webhook_deliveries_days: 30,
            notification_deliveries_days: 30,
            detached_volumes_days: 7,
        }
    }
}

impl Config {
    /// The checks of `[retention]` (part of `Config::validate`).
    pub(super) fn check_retention(&self) -> Result<(), ConfigError> {
        let r = &self.retention;
        if [
            r.deployment_logs_days,
            r.jobs_days,
            r.audit_days,
            r.topic_events_days,
            r.webhook_deliveries_days,
            r.notification_deliveries_days,
            r.detached_volumes_days,
        ]
        .contains(&0)
        {
            return Err(ConfigError(
                "retention: every retention must be at least 1 day".into(),
            ));
        }
        if self.databases.backup_timeout_secs < 10 {
            return Err(ConfigError(
                "databases.backup_timeout_secs: must be at least 10".into(),
            ));
        }
        Ok(())
    }
}
