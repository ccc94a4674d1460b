//! `shard doctor`: what is wrong with this host, in words an operator can act on. Each check
//! gives a status (`ok`, `warn`, `fail`, or `skip` when it does not apply), what it found, and
//! for anything but `ok` what to do. The command exits non-zero on any `fail`; the server runs
//! the same checks daily and on request (`GET /api/v1/system/doctor`), for the System page.
//!
//! The checks: Docker reachable (and its version); the listen addresses free or held by
//! shard; the public host and the apps domain resolving to this machine; an HTTP-01 style
//! self-probe of the public host on port 80; free disk and inodes where the data dir is; clock
//! skew against a reference (the Postgres server, else the Docker engine); the database's
//! integrity (`PRAGMA integrity_check`, or a Postgres round trip); the age of the newest good
//! backup of the installation (once it has a schedule) and of each database, and whether the
//! last one failed, and on Postgres whether `pg_dump`/`pg_restore` are there and not older
//! than the server; certificates that expire within 14 days; and configuration that is
//! legal but unwise (a plain-HTTP `public_url` with ACME on, a config file holding the secret
//! key that others may read).

mod checks;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::db::Db;
use crate::docker::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// A stable name (`docker`, `ports`, `dns`, `http01`, `disk`, `clock`, `database`,
    /// `backups`, `certificates`, `config`).
    pub name: &'static str,
    pub status: Status,
    /// What the check found.
    pub message: String,
    /// What to do about it (none when all is well).
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self {
            name,
            status,
            message: message.into(),
            fix: None,
        }
    }

    fn ok(name: &'static str, message: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, message)
    }

    fn skip(name: &'static str, message: impl Into<String>) -> Self {
        Self::new(name, Status::Skip, message)
    }

    fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            fix: Some(fix.into()),
            ..Self::new(name, Status::Warn, message)
        }
    }

    fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            fix: Some(fix.into()),
            ..Self::new(name, Status::Fail, message)
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// No check failed (warnings allowed).
    pub ok: bool,
    pub checked_at: DateTime<Utc>,
    pub checks: Vec<Check>,
}

/// Where the checks look.
pub struct Host<'a> {
    pub config: &'a Config,
    /// The database, when it could be opened (`database` fails otherwise and the checks that
    /// read it are skipped).
    pub db: Option<&'a Db>,
    /// Why it could not be, if so.
    pub db_error: Option<String>,
    pub docker: &'a Engine,
    /// Run inside the serving process: its listen addresses are its own.
    pub serving: bool,
}

impl Host<'_> {
    fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }
}

/// Runs every check (each bounded in time) and returns them in a fixed order.
pub async fn run(host: &Host<'_>) -> Report {
    let mut out = Vec::new();
    out.push(checks::docker(host).await);
    out.push(checks::ports(host).await);
    out.push(checks::dns(host).await);
    out.push(checks::http01(host).await);
    out.push(checks::disk(host));
    out.push(checks::clock(host).await);
    out.push(checks::database(host).await);
    out.push(checks::backups(host).await);
    out.push(checks::certificates(host).await);
    out.push(checks::config(host));
    Report {
        ok: out.iter().all(|c| c.status != Status::Fail),
        checked_at: Utc::now(),
        checks: out,
    }
}

/// The report as lines for a terminal: one per check, and the fix under anything not `ok`.
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    for check in &report.checks {
        let mark = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        text.push_str(&format!("{mark}  {:<13}{}\n", check.name, check.message));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("      {:<13}→ {fix}\n", ""));
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    text.push_str(&match failed {
        0 => "no problem found\n".to_string(),
        n => format!("{n} check(s) failed\n"),
    });
    text
}
