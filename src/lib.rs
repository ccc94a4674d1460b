//! shard: a self-hosted PaaS in one binary. See ARCHITECTURE.md for the map of this crate.
//!
//! # Bounds
//!
//! Nothing a repository, build, app or client does grows shard without limit:
//!
//! - log lines are cut at `deploy.max_log_line_bytes` (default 16 KiB) with a marker, for build
//!   output and runtime logs alike (`docker::LineSplitter`: a line without a newline never grows a
//!   buffer past the cap); a deployment persists at most `deploy.max_log_lines` output lines, then
//!   one "log truncated" line (status lines still follow);
//! - the log writer's channel is bounded: a slow database slows the build stream, never memory;
//! - fetch and build have time limits, the checkout a size limit; files read from a checkout
//!   (`.dockerignore`, the Dockerfile's path) never go through a symlink, and `.dockerignore` has
//!   a size cap;
//! - password hashing: at most `auth.hash_concurrency` (default 2) argon2 hashes at once, each
//!   on a block allocated above glibc's largest mmap threshold, so it is its own mapping and goes
//!   back to the system when the hash ends (glibc otherwise keeps ~19 MiB per hashing thread);
//! - the login limiter's maps and the API limiter's hold at most 50,000 entries each (an eighth,
//!   least recently used first, goes when full);
//! - a checkout is sized before it is written; the build context is a file streamed to Docker
//!   (shard's memory does not grow with it); a build's processes are capped by its cgroup;
//! - quotas (`[quotas]`): projects per user and per team, deploys per hour per user and per team,
//!   queued deploys per team, API requests per minute per user; unverified domains expire after
//!   `domains.pending_days`;
//! - retention (`[retention]`, enforced hourly by the maintenance job): build logs of ended
//!   deployments, `project:`/`user:` topic events, finished jobs, audit rows; a project's topic
//!   events go with it;
//! - the hub: bounded broadcast channels and recent rings per topic (below); runtime logs keep
//!   1,000 lines per followed project;
//! - metrics samples: raw for `metrics.raw_retention_hours` (24), 1-minute averages for
//!   `minute_retention_days` (7), 1-hour averages for `hour_retention_days` (90), rolled up and
//!   pruned every 5 minutes by the collector, so the table holds at most about 18,000 rows per
//!   app at the default 15 s interval; a series answer has at most 5,000 points; the collector
//!   keeps one previous reading per running container;
//! - notifications: at most 50 channels per user and the newest 200 deliveries per channel, the
//!   rest pruned by `retention.notification_deliveries_days`; the commit-status queue holds at
//!   most 1,024 changes; the watchdog's per-project state exists only for live projects;
//! - runs (one-off commands, job runs): at most `jobs.max_running` at once per instance, each
//!   with a timeout (its container killed past it), output bounded like a build log, the newest
//!   `jobs.keep_runs` kept per job; at most `jobs.max_per_project` jobs per project;
//! - `/metrics` series are labelled by route pattern, status, step and project id only;
//! - teams and tokens: at most 100 API tokens per user, 50 owned teams per user, 100 open
//!   invitations per team (pruned a week after they expire), 200 pending CLI sign-ins (rows,
//!   ten minutes each, the expired ones deleted at each new sign-in); a token's last use is written at most once a minute; audit rows go after
//!   `retention.audit_days`.

pub mod access;
pub mod app;
pub mod auth;
pub mod build;
pub mod checkout;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod db;
pub mod deploy;
pub mod docker;
pub mod doctor;
pub mod egress;
pub mod git;
pub mod github;
pub mod http;
pub mod hub;
pub mod install;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod notifications;
pub mod previews;
pub mod proxy;
pub mod secrets;
pub mod setup;
pub mod state;
pub mod storage;
pub mod supervisor;
pub mod tasks;
pub mod telemetry;
pub mod validate;
