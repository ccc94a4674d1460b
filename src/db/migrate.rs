//! Migrations that cannot strand an installation.
//!
//! - A database migrated by a newer shard (it records a migration this binary does not know)
//!   is refused before anything is touched, naming both schema versions: it is never
//!   "migrated down" and never half-read.
//! - On SQLite, before pending migrations run, the database is copied with `VACUUM INTO` (an
//!   online, consistent copy, unlike a file copy of a live WAL database) to
//!   `<data_dir>/snapshots/`. When a migration fails, the pool is closed, the snapshot is put
//!   back in place of the database file (its `-wal` and `-shm` files removed) and the error is
//!   returned, so the process exits with the database exactly as it was before the upgrade.
//!   The newest [`KEEP_SNAPSHOTS`] snapshots are kept (to go back to the older binary).
//! - On Postgres each migration runs in a transaction (sea-orm's rule for Postgres), so a
//!   failed one leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};

/// Snapshots kept in `<data_dir>/snapshots/`.
pub const KEEP_SNAPSHOTS: usize = 3;

/// The schema version a migration name stands for: its sequence number
/// (`m20261205_000021_metrics_subjects` → 21).
pub fn schema_of(name: &str) -> u32 {
    name.split('_')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The newest schema this binary knows.
pub fn known_schema() -> u32 {
    Migrator::migrations()
        .iter()
        .map(|m| schema_of(m.name()))
        .max()
        .unwrap_or(0)
}

/// Refuses a database that records migrations (`applied`) this binary does not know.
fn refuse_newer(applied: &[String]) -> anyhow::Result<()> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let unknown: Vec<&str> = applied
        .iter()
        .map(String::as_str)
        .filter(|v| !known.iter().any(|k| k == v))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let newest = unknown.iter().map(|v| schema_of(v)).max().unwrap_or(0);
    anyhow::bail!(
        "the database is at schema {newest} (written by a newer shard; it records {}), and this \
         shard {} knows schemas up to {}: run the newer shard, or restore a backup made for this one",
        unknown.join(", "),
        env!("CARGO_PKG_VERSION"),
        known_schema()
    )
}

/// The file of a `sqlite:` URL (none for an in-memory database or another backend).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Applies pending migrations; see the module doc. `database_url` locates a SQLite file,
/// `snapshots` is where its copies go: `None` when another process may have the file open
/// (no copy is then put back over it; the failed migration's transaction is rolled back).
pub async fn migrate(
    db: DatabaseConnection,
    database_url: &str,
    snapshots: Option<&Path>,
) -> anyhow::Result<DatabaseConnection> {
    // Read once: the migrations the database records (none: a fresh database, no table yet).
    let applied: Option<Vec<String>> = Migrator::get_migration_models(&db)
        .await
        .ok()
        .map(|models| models.into_iter().map(|m| m.version).collect());
    refuse_newer(applied.as_deref().unwrap_or_default())?;
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .filter(|name| !applied.as_ref().is_some_and(|a| a.contains(name)))
        .collect();
    if names.is_empty() {
        return Ok(db);
    }
    let file = (db.get_database_backend() == DbBackend::Sqlite)
        .then(|| sqlite_file(database_url))
        .flatten();
    // A database with no table yet has nothing to keep.
    let snapshot = match (&file, snapshots, &applied) {
        (Some(_), Some(dir), Some(applied)) => {
            let schema = applied.iter().map(|v| schema_of(v)).max().unwrap_or(0);
            Some(snapshot(&db, dir, schema).await?)
        }
        _ => None,
    };
    tracing::debug!(migrations = ?names, snapshot = ?snapshot, "applying migrations");
    let Err(e) = Migrator::up(&db, None).await else {
        tracing::info!(
            applied = names.len(),
            schema = known_schema(),
            "database migrated"
        );
        return Ok(db);
    };
    let failed = Migrator::get_pending_migrations(&db)
        .await
        .ok()
        .and_then(|p| p.first().map(|m| m.name().to_string()))
        .unwrap_or_else(|| names[0].clone());
    let error = anyhow::Error::new(e).context(format!("migration {failed} failed"));
    let (Some(file), Some(snapshot)) = (file, snapshot) else {
        return Err(error);
    };
    db.close().await.ok();
    put_back(&snapshot, &file).with_context(|| {
        format!(
            "{error:#}; and the snapshot {} could not be put back in place of {}",
            snapshot.display(),
            file.display()
        )
    })?;
    Err(error.context(format!(
        "the database was put back as it was before ({})",
        snapshot.display()
    )))
}

/// `VACUUM INTO` a new file in `dir` (named after the database's `schema`), then keeps the newest [`KEEP_SNAPSHOTS`].
async fn snapshot(db: &DatabaseConnection, dir: &Path, schema: u32) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let path = dir.join(format!("shard-schema{schema}-{stamp}.db"));
    vacuum_into(db, &path).await?;
    let mut kept: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("shard-schema"))
        })
        .collect();
    kept.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let excess = kept.len().saturating_sub(KEEP_SNAPSHOTS);
    for old in kept.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// Copies a live SQLite database to a new file at `path` (mode 0600) with `VACUUM INTO`: a
/// consistent copy taken in one read transaction, which a file copy of a WAL database is not.
pub async fn vacuum_into(db: &DatabaseConnection, path: &Path) -> anyhow::Result<()> {
    let quoted = path.to_string_lossy().replace('\'', "''");
    db.execute_unprepared(&format!("VACUUM INTO '{quoted}'"))
        .await
        .with_context(|| format!("cannot copy the database to {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The schema version the database is at (the newest migration it records; 0 when none).
pub async fn schema(db: &DatabaseConnection) -> anyhow::Result<u32> {
    let applied = Migrator::get_migration_models(db)
        .await
        .context("cannot read the migrations the database records")?;
    Ok(applied
        .iter()
        .map(|m| schema_of(&m.version))
        .max()
        .unwrap_or(0))
}

/// Replaces `file` by a copy of `snapshot` (written beside it and renamed over it), and removes
/// the old file's WAL and shared-memory files.
fn put_back(snapshot: &Path, file: &Path) -> std::io::Result<()> {
    let staged = file.with_extension("restoring");
    std::fs::copy(snapshot, &staged)?;
    std::fs::File::open(&staged)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let mut side = file.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(PathBuf::from(side)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(&staged, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_numbers_and_sqlite_files_are_read_from_names() {
        assert_eq!(schema_of("m20261205_000021_metrics_subjects"), 21);
        assert_eq!(schema_of("garbage"), 0);
        assert!(known_schema() >= 21);
        assert_eq!(
            sqlite_file("sqlite:///var/lib/shard/shard.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/shard/shard.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
