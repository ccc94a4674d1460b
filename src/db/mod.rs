//! The database: one connection pool over SQLite (default, a WAL-mode file in the data dir) or
//! Postgres, the sea-orm entities, and the queries grouped per aggregate. Only this module
//! touches entity internals; callers get plain models and functions.

pub mod api_tokens;
pub mod audit;
pub mod backups;
pub mod cli_logins;
pub mod databases;
pub mod deployment_logs;
pub mod deployments;
pub mod domains;
pub mod entities;
pub mod env_vars;
pub mod files;
pub mod git_accounts;
pub mod health;
pub mod invitations;
pub mod jobs;
pub mod metrics;
pub mod migrate;
pub mod notification_channels;
pub mod previews;
pub mod projects;
pub mod runs;
pub mod sessions;
pub mod shared;
pub mod teams;
pub mod topic_events;
pub mod users;
pub mod volumes;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

pub use sea_orm::DatabaseConnection as Db;

/// Opens the pool. SQLite files are created on first start, in WAL mode with foreign keys on.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    Ok(connect_retiring(url).await?.0)
}

/// [`connect`], with the handle that retires the pool's connections (see [`Retirement`]).
pub async fn connect_retiring(url: &str) -> anyhow::Result<(DatabaseConnection, Retirement)> {
    let retirement = Retirement::default();
    let sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(if sqlite { 8 } else { 16 })
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    // sqlx pings every connection it hands out by default: one more round trip per query (to
    // SQLite's worker thread, or over the network). A file never goes away; a Postgres
    // connection is pinged only after it sat idle long enough to have been dropped.
    if sqlite {
        options.test_before_acquire(false);
    } else {
        options.test_before_acquire_if_idle_for(Duration::from_secs(30));
        let retired = retirement.clone();
        options.map_sqlx_postgres_before_acquire(move |_, meta| {
            let keep = retired.keeps(meta.age);
            Box::pin(async move { Ok(keep) })
        });
    }
    if sqlite {
        options.map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Rows a connection's thread may read ahead of the caller (sqlx's default, 50,
                // makes it wait on the caller every 50 rows of a long read such as a replay
                // page of 1,000 log lines).
                .row_buffer_size(1000)
        });
    }
    let db = Database::connect(options)
        .await
        .with_context(|| format!("cannot open the database ({})", redact_url(url)))?;
    Ok((db, retirement))
}

pub use migrate::migrate;

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
}

/// Retires a pool's Postgres connections that may belong to a runtime which is gone.
///
/// A pooled Postgres connection's socket is registered with the Tokio runtime of the task that
/// opened it. Request handlers run on actix's worker runtimes, one per worker thread; when the
/// HTTP server stops (SIGTERM, or an upgrade's drain) those runtimes end and every connection
/// they opened fails its next query ("a Tokio context … is being shutdown"), although the jobs
/// and loops on the main runtime still use the pool. [`Retirement::retire`] marks every
/// connection open now as not to be handed out again: the pool closes it on its next acquire
/// and opens a new one on the caller's runtime (a live one costs a reconnect). SQLite is not
/// concerned: each of its connections has a thread of its own.
#[derive(Clone)]
pub struct Retirement(Arc<RetiredBefore>);

struct RetiredBefore {
    origin: Instant,
    /// Microseconds after `origin` before which opened connections are retired (0: none).
    micros: AtomicU64,
}

impl Default for Retirement {
    fn default() -> Self {
        Retirement(Arc::new(RetiredBefore {
            origin: Instant::now(),
            micros: AtomicU64::new(0),
        }))
    }
}

impl Retirement {
    fn micros_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.0.origin).as_micros()).unwrap_or(u64::MAX)
    }

    /// Connections open now are closed instead of handed out again.
    pub fn retire(&self) {
        let now = self.micros_at(Instant::now()).max(1);
        self.0.micros.store(now, Ordering::Release);
    }

    /// Whether a connection opened `age` ago may be handed out.
    fn keeps(&self, age: Duration) -> bool {
        let before = self.0.micros.load(Ordering::Acquire);
        if before == 0 {
            return true;
        }
        let opened = Instant::now().checked_sub(age).unwrap_or(self.0.origin);
        self.micros_at(opened) >= before
    }
}

/// A database URL safe to log: the password, if any, replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// True when `err` is a unique-constraint violation (on either backend).
pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A new time-ordered public id.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_a_retirement_go_and_later_ones_stay() {
        let retirement = Retirement::default();
        assert!(
            retirement.keeps(Duration::from_secs(3600)),
            "nothing retired before a call"
        );
        std::thread::sleep(Duration::from_millis(5));
        retirement.retire();
        assert!(
            !retirement.keeps(Duration::from_millis(2)),
            "opened before the retirement"
        );
        assert!(
            !retirement.keeps(Duration::from_secs(3600)),
            "opened before the pool"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            retirement.keeps(Duration::from_millis(1)),
            "opened after it"
        );
    }
}
