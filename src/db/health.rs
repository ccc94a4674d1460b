//! What `shard doctor` and `shard backup` ask the database itself: its integrity, its clock,
//! and how much it holds.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::Db;

/// SQLite's `PRAGMA integrity_check` (`ok`, or the first problem it reports); on Postgres a
/// round trip (`ok`).
pub async fn integrity(db: &Db) -> Result<String, DbErr> {
    check(db, "PRAGMA integrity_check(1)").await
}

/// SQLite's `PRAGMA quick_check`: every page and record well formed, without comparing each
/// index with its table (linear, about 7× faster than `integrity`); a restore runs it on a
/// copy whose bytes its checksum already vouches for.
pub async fn quick_check(db: &Db) -> Result<String, DbErr> {
    check(db, "PRAGMA quick_check(1)").await
}

async fn check(db: &Db, pragma: &str) -> Result<String, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => pragma,
        _ => "SELECT 'ok'",
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("no answer".into()))?;
    row.try_get_by_index::<String>(0)
}

/// The Postgres server's clock (none on SQLite, which has no clock of its own).
pub async fn server_time(db: &Db) -> Result<Option<DateTime<Utc>>, DbErr> {
    postgres_value(db, "SELECT now() AS v").await
}

/// The Postgres server's major version (15 for 15.4; none on SQLite).
pub async fn server_major(db: &Db) -> Result<Option<u32>, DbErr> {
    let number: Option<String> =
        postgres_value(db, "SELECT current_setting('server_version_num') AS v").await?;
    Ok(number
        .and_then(|n| n.parse::<u32>().ok())
        .map(|n| n / 10_000))
}

/// Column `v` of the one row `sql` answers on Postgres (none on SQLite).
async fn postgres_value<T: sea_orm::TryGetable>(db: &Db, sql: &str) -> Result<Option<T>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?;
    row.map(|row| row.try_get::<T>("", "v")).transpose()
}

/// Tables counted in an instance backup's summary.
pub const COUNTED: &[&str] = &[
    "users",
    "teams",
    "projects",
    "deployments",
    "env_vars",
    "domains",
    "databases",
    "volumes",
];

/// Rows in each of [`COUNTED`].
pub async fn counts(db: &Db) -> Result<Vec<(String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let mut out = Vec::with_capacity(COUNTED.len());
    for table in COUNTED {
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        let n = match db
            .query_one_raw(Statement::from_string(backend, sql))
            .await?
        {
            Some(row) => row.try_get::<i64>("", "n")?,
            None => 0,
        };
        out.push(((*table).to_string(), n));
    }
    Ok(out)
}
