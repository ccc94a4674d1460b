//! The `[metrics]` section (how often the collector samples app containers, how long each
//! resolution of samples is kept, who may scrape `GET /metrics`), the `[health]` section (the
//! watchdog of running apps) and the `[smtp]` section (the mail server email notifications go
//! through).

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds between two samples of every running app container (0 turns the collector off).
    pub interval_secs: u64,
    /// How long raw samples are kept (then only the 1-minute averages).
    pub raw_retention_hours: u32,
    /// How long 1-minute averages are kept (then only the 1-hour averages).
    pub minute_retention_days: u32,
    /// How long 1-hour averages are kept.
    pub hour_retention_days: u32,
    /// A bearer token that lets any client scrape `GET /metrics`; without it only loopback
    /// clients may.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval_secs: 15,
            raw_retention_hours: 24,
            minute_retention_days: 7,
            hour_retention_days: 90,
            token: None,
        }
    }
}

impl Config {
    /// The checks of `[metrics]` (part of `Config::validate`).
    pub(super) fn check_metrics(&self) -> Result<(), ConfigError> {
        let m = &self.metrics;
        let bad = |key: &str, why: &str| Err(ConfigError(format!("metrics.{key}: {why}")));
        if m.interval_secs > 3600 {
            return bad(
                "interval_secs",
                "must be at most 3600 (0 turns the collector off)",
            );
        }
        if m.raw_retention_hours == 0 || m.minute_retention_days == 0 || m.hour_retention_days == 0
        {
            return bad("raw_retention_hours", "every retention must be at least 1");
        }
        if m.raw_retention_hours > 24 * 31
            || m.minute_retention_days > 90
            || m.hour_retention_days > 3660
        {
            return bad(
                "hour_retention_days",
                "retentions are bounded (raw ≤ 744 h, minute ≤ 90 d, hour ≤ 3660 d) so the table stays small",
            );
        }
        if m.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return bad("token", "must be at least 16 characters");
        }
        Ok(())
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), usually port 587.
    Starttls,
    /// TLS from the first byte, usually port 465.
    Tls,
    /// No encryption: only for a relay on the same host or a test sink.
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The mail server; email channels cannot be added until it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The sender, e.g. `shard <shard@example.com>`.
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: "shard <shard@localhost>".into(),
        }
    }
}

impl Config {
    /// The checks of `[smtp]` (part of `Config::validate`).
    pub(super) fn check_smtp(&self) -> Result<(), ConfigError> {
        let s = &self.smtp;
        if s.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError(
                "smtp.from: must be an address such as `shard <shard@example.com>`".into(),
            ));
        }
        if s.username.is_some() != s.password.is_some() {
            return Err(ConfigError(
                "smtp.username: username and password go together".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between two probes of every running app's health path (0 turns it off).
    pub interval_secs: u64,
    /// Failed probes in a row that restart the app (through the health-gated switch).
    pub failures: u32,
    /// Restarts (Docker's and the watchdog's) within `crash_loop_window_secs` that mean a
    /// crash loop: the app is stopped, marked crashed, and its owner notified.
    pub crash_loop_restarts: u32,
    pub crash_loop_window_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_secs: 30,
            failures: 3,
            crash_loop_restarts: 5,
            crash_loop_window_secs: 600,
        }
    }
}

impl Config {
    /// The checks of `[health]` (part of `Config::validate`).
    pub(super) fn check_health(&self) -> Result<(), ConfigError> {
        let h = &self.health;
        let bad = |key: &str, why: &str| Err(ConfigError(format!("health.{key}: {why}")));
        if h.failures == 0 {
            return bad("failures", "must be at least 1");
        }
        if h.crash_loop_restarts < 2 {
            return bad("crash_loop_restarts", "must be at least 2");
        }
        if h.crash_loop_window_secs == 0 || h.interval_secs > 3600 {
            return bad(
                "crash_loop_window_secs",
                "must be at least 1 (and interval_secs at most 3600)",
            );
        }
        Ok(())
    }
}
