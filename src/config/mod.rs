//! Layered configuration: built-in defaults, then the TOML file, then `SHARD_*` environment
//! variables (`__` separates section and key), then command-line flags. Validated once at load.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod build;
mod cluster;
mod databases;
mod github;
mod observe;
mod retention;
mod serving;
mod tenancy;
mod values;
mod workloads;
pub use build::{BuildConfig, BuildImages, BuildVersions};
pub use cluster::{RegistryConfig, RuntimeConfig, RuntimeKind};
pub use databases::{DatabaseImages, DatabaseVersions, DatabasesConfig};
pub use github::GithubConfig;
pub use observe::{HealthConfig, MetricsConfig, SmtpConfig, SmtpTls};
pub use retention::RetentionConfig;
pub use serving::{AcmeConfig, CertificateFiles, DnsConfig, ProxyConfig};
pub use tenancy::{DomainsConfig, QuotasConfig};
pub use values::{SubnetPool, custom_domain, dns_label, domain, parse_resolver, parse_secret_key};
pub use workloads::{ContainersConfig, DeployConfig, ExecConfig, PreviewsConfig};

/// The documented example, also what `shard config init` writes.
pub const EXAMPLE_TOML: &str = include_str!("../../config.example.toml");

/// The file read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "shard.toml";

/// A value that must never reach logs or `config show`: `Debug` and `Serialize` redact it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The clear value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"[redacted]\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The file this configuration was read from, if any (not a key: `shard doctor` checks
    /// who may read it when it holds the secret key).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
    /// Where the SQLite file, keys and build directories live.
    pub data_dir: PathBuf,
    /// Address the dashboard, API and app proxy listen on.
    pub listen: SocketAddr,
    /// `sqlite://...` or `postgres://...`; empty means `<data_dir>/shard.db`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret>,
    /// 32-byte sealing key (64 hex chars or base64); empty means `<data_dir>/secret.key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<Secret>,
    /// The dashboard's external URL (used in the setup link and cookies); default `http://<listen>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub apps: AppsConfig,
    pub jobs: JobsConfig,
    pub git: GitConfig,
    pub docker: DockerConfig,
    pub deploy: DeployConfig,
    pub build: BuildConfig,
    pub databases: DatabasesConfig,
    pub containers: ContainersConfig,
    pub exec: ExecConfig,
    pub previews: PreviewsConfig,
    pub retention: RetentionConfig,
    pub quotas: QuotasConfig,
    pub domains: DomainsConfig,
    pub proxy: ProxyConfig,
    pub dns: DnsConfig,
    pub acme: AcmeConfig,
    pub github: GithubConfig,
    pub metrics: MetricsConfig,
    pub smtp: SmtpConfig,
    pub health: HealthConfig,
    pub runtime: RuntimeConfig,
    pub registry: RegistryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `shard=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted JSON request body.
    pub body_limit_bytes: usize,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Reverse proxies in front of shard whose `X-Forwarded-For` is believed when they are
    /// the TCP peer (for login rate limits and audit). Empty: the peer address is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Login attempts allowed per client IP in one window.
    pub login_attempts_per_ip: u32,
    /// Failed logins allowed per username in one window.
    pub login_failures_per_username: u32,
    pub login_window_secs: u64,
    /// Password hashes computed at once (each holds 19 MiB while it runs); more wait.
    pub hash_concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppsConfig {
    /// Apps answer at `<slug>.<domain>`.
    pub domain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs run at the same time.
    pub concurrency: usize,
    /// Seconds a claimed job stays leased without renewal before it is recovered.
    pub lease_secs: u64,
    /// A scheduled job's firing missed while shard was down runs once at start when it is at
    /// most this old; older ones are skipped to the next firing.
    pub catch_up_secs: u64,
    /// How often due scheduled jobs are looked for, in milliseconds.
    pub schedule_tick_ms: u64,
    /// Scheduled jobs per project.
    pub max_per_project: u64,
    /// Runs (one-off commands and job runs) at the same time on this instance; more are
    /// refused (409), a scheduled firing is skipped.
    pub max_running: usize,
    /// The longest timeout a job or a one-off command may ask for.
    pub max_timeout_secs: u64,
    /// Runs kept per job, and one-off runs per project (older ones go with their output).
    pub keep_runs: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitConfig {
    /// Allow `file://` git URLs (only for trusted single-user installs).
    pub allow_local_sources: bool,
    /// Let members use git URLs on loopback, private or link-local addresses (admins always
    /// may). Off by default: a fetch would otherwise reach the host's own networks.
    pub allow_private_networks: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Docker endpoint such as `unix:///var/run/docker.sock`; empty means `DOCKER_HOST` or the default socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            source_file: None,
            data_dir: PathBuf::from("./shard-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            secret_key: None,
            public_url: None,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            apps: AppsConfig::default(),
            jobs: JobsConfig::default(),
            git: GitConfig::default(),
            docker: DockerConfig::default(),
            deploy: DeployConfig::default(),
            build: BuildConfig::default(),
            databases: DatabasesConfig::default(),
            containers: ContainersConfig::default(),
            exec: ExecConfig::default(),
            previews: PreviewsConfig::default(),
            retention: RetentionConfig::default(),
            quotas: QuotasConfig::default(),
            domains: DomainsConfig::default(),
            proxy: ProxyConfig::default(),
            dns: DnsConfig::default(),
            acme: AcmeConfig::default(),
            github: GithubConfig::default(),
            metrics: MetricsConfig::default(),
            smtp: SmtpConfig::default(),
            health: HealthConfig::default(),
            runtime: RuntimeConfig::default(),
            registry: RegistryConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            workers: 0,
            shutdown_timeout_secs: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            login_attempts_per_ip: 20,
            login_failures_per_username: 5,
            login_window_secs: 300,
            hash_concurrency: 2,
        }
    }
}

impl Default for AppsConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".into(),
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            lease_secs: 30,
            catch_up_secs: 3600,
            schedule_tick_ms: 5000,
            max_per_project: 20,
            max_running: 8,
            max_timeout_secs: 86_400,
            keep_runs: 50,
        }
    }
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    /// Read `./shard.toml` only when named: `shard plan` runs inside repositories, where a
    /// `shard.toml` is the repository's build settings, not the server's configuration.
    pub no_default_file: bool,
}

/// Top-level keys (every field of `Config`); `SHARD_*` variables outside them (such as
/// `SHARD_CONFIG`) are not config. Read off the defaults, so a new section is never missed.
fn top_keys() -> Vec<String> {
    let mut keys: Vec<String> = match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    // Optional keys are left out of the serialized defaults when unset.
    keys.extend(["database_url", "secret_key", "public_url"].map(String::from));
    keys
}

/// A configuration problem, phrased so the person starting shard knows what to change.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults → file → environment → flags, then validates.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let mut source_file = None;
        match &overrides.config_file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist (create one with `shard config init`)",
                    path.display()
                )));
            }
            Some(path) => {
                source_file = Some(path.clone());
                figment = figment.merge(Toml::file_exact(path))
            }
            None if !overrides.no_default_file && Path::new(DEFAULT_CONFIG_FILE).exists() => {
                source_file = Some(PathBuf::from(DEFAULT_CONFIG_FILE));
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        let top_keys = top_keys();
        figment = figment.merge(Env::prefixed("SHARD_").split("__").filter(move |key| {
            let top = key
                .as_str()
                .split('.')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            top_keys.contains(&top)
        }));
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(Serialized::default("listen", listen));
        }
        let mut config: Config = figment.extract().map_err(|e| {
            let hint = "see config.example.toml for every key and its allowed values";
            ConfigError(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
                    + &format!(" ({hint})"),
            )
        })?;
        config.validate()?;
        config.source_file = source_file;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if self.data_dir.as_os_str().is_empty() {
            return bad(
                "data_dir",
                "must not be empty (SHARD_DATA_DIR or --data-dir)",
            );
        }
        if let Some(url) = &self.database_url {
            let url = url.expose();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !url.is_empty() && !known.iter().any(|scheme| url.starts_with(scheme)) {
                return bad(
                    "database_url",
                    "must start with sqlite:, postgres:// or postgresql:// (or be empty for the SQLite file in data_dir)",
                );
            }
        }
        if let Some(key) = &self.secret_key
            && !key.expose().is_empty()
            && parse_secret_key(key.expose()).is_none()
        {
            return bad(
                "secret_key",
                "must be 32 bytes as 64 hex characters or base64 (generate one with `openssl rand -hex 32`)",
            );
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad("public_url", "must start with http:// or https://");
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return bad(
                "log.level",
                "is not a valid filter (try `info` or `shard=debug,info`)",
            );
        }
        if let Err(why) = self.build.check() {
            return Err(ConfigError(why));
        }
        if self.http.body_limit_bytes < 1024 {
            return bad("http.body_limit_bytes", "must be at least 1024");
        }
        if self.auth.access_token_ttl_secs < 30 || self.auth.access_token_ttl_secs > 24 * 3600 {
            return bad("auth.access_token_ttl_secs", "must be between 30 and 86400");
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return bad(
                "auth.refresh_token_ttl_secs",
                "must be at least auth.access_token_ttl_secs",
            );
        }
        if self.auth.login_attempts_per_ip == 0 || self.auth.login_failures_per_username == 0 {
            return bad(
                "auth.login_attempts_per_ip",
                "login limits must be at least 1",
            );
        }
        if !(1..=64).contains(&self.auth.hash_concurrency) {
            return bad("auth.hash_concurrency", "must be between 1 and 64");
        }
        if self.auth.login_window_secs == 0 {
            return bad("auth.login_window_secs", "must be at least 1");
        }
        if let Err(e) = domain(&self.apps.domain) {
            return bad("apps.domain", &e);
        }
        if !(1..=64).contains(&self.jobs.concurrency) {
            return bad("jobs.concurrency", "must be between 1 and 64");
        }
        if self.deploy.grace_secs > 3600 {
            return bad("deploy.grace_secs", "must be at most 3600");
        }
        if self.deploy.keep_images == 0 {
            return bad("deploy.keep_images", "must be at least 1 (the live image)");
        }
        let d = &self.deploy;
        if d.fetch_timeout_secs == 0 || d.build_timeout_secs == 0 {
            return bad(
                "deploy.fetch_timeout_secs",
                "fetch and build timeouts must be at least 1 second",
            );
        }
        if d.max_site_mb == 0 {
            return bad("deploy.max_site_mb", "must be at least 1");
        }
        if d.max_checkout_mb == 0 {
            return bad("deploy.max_checkout_mb", "must be at least 1");
        }
        if !(256..=1 << 20).contains(&d.max_log_line_bytes) {
            return bad(
                "deploy.max_log_line_bytes",
                "must be between 256 and 1048576",
            );
        }
        if d.max_log_lines < 100 {
            return bad("deploy.max_log_lines", "must be at least 100");
        }
        let c = &self.containers;
        if !(6..=c.max_memory_mb).contains(&c.memory_mb) {
            return bad(
                "containers.memory_mb",
                "must be between 6 and containers.max_memory_mb",
            );
        }
        if !(10..=c.max_cpu_millis).contains(&c.cpu_millis) {
            return bad(
                "containers.cpu_millis",
                "must be between 10 and containers.max_cpu_millis",
            );
        }
        if c.pids_limit < 16 {
            return bad("containers.pids_limit", "must be at least 16");
        }
        if let Err(why) = SubnetPool::parse(&c.network_pool, c.network_prefix) {
            return bad("containers.network_pool", &why);
        }
        if c.log_max_size_mb == 0 || c.log_max_files == 0 {
            return bad(
                "containers.log_max_size_mb",
                "log size and file count must be at least 1",
            );
        }
        self.check_serving()?;
        self.check_github()?;
        self.check_metrics()?;
        self.check_cluster()?;
        self.check_smtp()?;
        self.check_health()?;
        self.check_retention()?;
        self.check_tenancy()?;
        if self.jobs.lease_secs < 5 {
            return bad("jobs.lease_secs", "must be at least 5");
        }
        if !(100..=60_000).contains(&self.jobs.schedule_tick_ms) {
            return bad("jobs.schedule_tick_ms", "must be between 100 and 60000");
        }
        if !self.exec.shell.starts_with('/') || self.exec.shell.contains(char::is_whitespace) {
            return bad(
                "exec.shell",
                "must be an absolute path without spaces, e.g. /bin/sh",
            );
        }
        if self.exec.idle_secs < 10
            || self.exec.sessions_per_user == 0
            || self.exec.bytes_per_sec < 1024
        {
            return bad(
                "exec",
                "idle_secs must be at least 10, sessions_per_user at least 1, bytes_per_sec at least 1024",
            );
        }
        let p = &self.previews;
        if p.reconcile_secs == 0
            || p.memory_mb < 16
            || p.cpu_millis < 10
            || p.max_ttl_days < 1
            || p.max_per_project < 1
        {
            return bad(
                "previews",
                "reconcile_secs, max_ttl_days and max_per_project must be at least 1, memory_mb 16, cpu_millis 10",
            );
        }
        if !(1..=256).contains(&self.jobs.max_running) {
            return bad("jobs.max_running", "must be between 1 and 256");
        }
        if self.jobs.max_timeout_secs < 1 || self.jobs.keep_runs < 1 {
            return bad("jobs", "max_timeout_secs and keep_runs must be at least 1");
        }
        Ok(())
    }

    /// The URL people open to reach the dashboard.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The dashboard's external URL: `public_url`, else the listen address with `port`, the
    /// port actually bound (so links are right when listening on port 0).
    pub fn public_base(&self, port: u16) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}:{port}", self.listen.ip()),
        }
    }

    /// The database URL in effect: the configured one or the SQLite file in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.expose().is_empty() => url.expose().to_string(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("shard.db").display()
            ),
        }
    }

    /// The effective configuration as TOML, secrets redacted (`shard config show`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
