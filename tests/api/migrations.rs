//! Migrations that cannot strand an installation: a migration that fails half-way leaves the
//! database as it was (on SQLite the snapshot taken before is put back, on both backends the
//! migration's transaction is rolled back), the error names the migration, and once the cause
//! is gone the same binary migrates; a database written by a newer shard is refused, naming
//! both schema versions, before anything is touched.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::helpers::fresh_database_url;

/// A database to migrate: a fresh Postgres one in the Postgres run, else a SQLite file.
async fn database(dir: &tempfile::TempDir) -> (String, DatabaseConnection) {
    let url = match fresh_database_url().await {
        Some(url) => url,
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("shard.db").display()
        ),
    };
    let db = shard::db::connect(&url).await.unwrap();
    (url, db)
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql.to_string(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Whether `table` has `column` (both backends).
async fn has_column(db: &DatabaseConnection, table: &str, column: &str) -> bool {
    let sql = if shard::db::is_postgres(db) {
        format!(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_name = '{table}' AND column_name = '{column}'"
        )
    } else {
        format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = '{column}'")
    };
    count(db, &sql).await > 0
}

async fn has_table(db: &DatabaseConnection, table: &str) -> bool {
    let sql = if shard::db::is_postgres(db) {
        format!("SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '{table}'")
    } else {
        format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'")
    };
    count(db, &sql).await > 0
}

#[tokio::test]
async fn a_failed_migration_leaves_the_database_as_it_was_and_a_newer_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let (url, db) = database(&dir).await;
    // Schema 19, plus the column migration 20 adds third: it creates its table and a first
    // column, then fails.
    Migrator::up(&db, Some(19)).await.unwrap();
    db.execute_unprepared("ALTER TABLE backups ADD COLUMN runner VARCHAR(64)")
        .await
        .unwrap();
    let Err(error) = shard::db::migrate(db, &url, Some(&snapshots)).await else {
        panic!("migration 20 did not fail");
    };
    let message = format!("{error:#}");
    assert!(
        message.contains("migration m20261205_000020_backup_schedules failed"),
        "{message}"
    );

    if url.starts_with("sqlite:") {
        // The snapshot taken before was put back: the file is a copy of it.
        let taken: Vec<_> = std::fs::read_dir(&snapshots)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(taken.len(), 1, "{taken:?}");
        assert!(message.contains("put back as it was before"), "{message}");
        let same = std::fs::read(dir.path().join("shard.db")).unwrap()
            == std::fs::read(&taken[0]).unwrap();
        assert!(same, "the database file is not the snapshot");
    }
    let db = shard::db::connect(&url).await.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM seaql_migrations").await,
        19
    );
    assert!(!has_table(&db, "backup_schedules").await);
    assert!(!has_column(&db, "backups", "volume_id").await);
    assert!(has_column(&db, "backups", "runner").await);

    // The cause gone, the same binary migrates to the end.
    db.execute_unprepared("ALTER TABLE backups DROP COLUMN runner")
        .await
        .unwrap();
    let db = shard::db::migrate(db, &url, Some(&snapshots))
        .await
        .unwrap();
    assert!(has_table(&db, "backup_schedules").await);
    let known = Migrator::migrations().len() as i64;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM seaql_migrations").await,
        known
    );

    // A database a newer shard migrated is refused, naming both schemas, and left alone.
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000099_from_the_future', 0)",
    )
    .await
    .unwrap();
    let Err(error) = shard::db::migrate(db, &url, Some(&snapshots)).await else {
        panic!("a newer database was not refused");
    };
    let message = format!("{error:#}");
    let known_schema = shard::db::migrate::known_schema();
    assert!(
        message.contains("the database is at schema 99")
            && message.contains(&format!("knows schemas up to {known_schema}")),
        "{message}"
    );
    let db = shard::db::connect(&url).await.unwrap();
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM seaql_migrations").await,
        known + 1
    );
}
