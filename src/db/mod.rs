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

use std::time::Duration;

use anyhow::Context;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};

pub use sea_orm::DatabaseConnection as Db;

/// Opens the pool. SQLite files are created on first start, in WAL mode with foreign keys on.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
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
    Database::connect(options)
        .await
        .with_context(|| format!("cannot open the database ({})", redact_url(url)))
}

pub use migrate::migrate;

pub fn is_postgres(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Postgres
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
