//! Restores: a backup into the database it is of, or into a new one. The file's checksum is
//! checked before anything is touched (a truncated or changed file is refused, saying so).
//! Into the same database a safety backup is taken first; then, for PostgreSQL, the other
//! connections are ended and `pg_restore --clean` runs in one transaction, so a failed restore
//! changes nothing; for MySQL and MariaDB the dump's statements run (each dumped table dropped
//! and made again); for Redis the server is started from the snapshot and its append-only
//! file rewritten from it. Meanwhile the database is `restoring`, and its message says how the
//! restore ended. Into a new database (same kind, version and team), it is restored once it
//! comes up. Volume backups are restored in `volumes`.

use std::sync::Arc;

use uuid::Uuid;

use super::connection::{container_name, interface};
use super::databases::{Credentials, Databases, StorageError, credentials};
use super::kinds;
use super::store::{Object, Store};
use crate::db;
use crate::db::backups::{Backup, NewBackup};
use crate::db::databases::Database;
use crate::docker::DatabaseRun;
use crate::model::{DatabaseKind, DatabaseState};

impl Databases {
    /// Checks that a database backup's file is still what was stored; answers it.
    async fn restorable(&self, backup: &Backup) -> Result<Object, StorageError> {
        if backup.source_kind.database().is_none() {
            return Err(StorageError::Invalid {
                field: "backup",
                message: "a volume backup is restored into its volume".into(),
            });
        }
        self.stored_object(backup).await
    }

    /// Checks that backup's file (of any kind) is still what was stored; answers it.
    pub(super) async fn stored_object(&self, backup: &Backup) -> Result<Object, StorageError> {
        let refuse = |message: String| StorageError::Invalid {
            field: "backup",
            message,
        };
        let expected = backup
            .sha256
            .clone()
            .ok_or_else(|| refuse("the backup was never stored whole".into()))?;
        let destination = match backup.destination_id {
            Some(id) => db::backups::destination(&self.db, id).await?,
            None => None,
        }
        .ok_or_else(|| refuse("its destination was removed".into()))?;
        let store = Store::open(&destination, &self.sealer).map_err(refuse)?;
        let actual = store.sha256(&backup.object_key).await.map_err(refuse)?;
        if actual != expected {
            return Err(refuse(format!(
                "the backup file is truncated or changed (SHA-256 {actual}, expected {expected}); \
                 it cannot be restored"
            )));
        }
        Ok(Object {
            store,
            key: backup.object_key.clone(),
        })
    }

    /// Restores `backup` into `database` (the one it is of): a safety backup first, then the
    /// other connections ended and the dump restored in one transaction (a failure changes
    /// nothing). Checks the file before answering; the rest runs in the background, the
    /// database `restoring` meanwhile and its message saying how it ended.
    pub async fn restore_same(
        self: &Arc<Self>,
        backup: &Backup,
        database: Database,
    ) -> Result<Database, StorageError> {
        if backup.database_id != Some(database.id) {
            return Err(StorageError::Conflict(
                "the backup is of another database; restore it into a new one".into(),
            ));
        }
        if database.status != DatabaseState::Running {
            return Err(StorageError::Conflict(format!(
                "the database is {}; it must be running to be restored into",
                database.status
            )));
        }
        let file = self.restorable(backup).await?;
        let message = format!("restoring backup {}", backup.id);
        db::databases::set_state(
            &self.db,
            database.id,
            DatabaseState::Restoring,
            Some(message),
            None,
        )
        .await?;
        let (this, backup) = (self.clone(), backup.clone());
        let target = database.clone();
        tokio::spawn(async move {
            let message = match this.restore_into_same(&backup, &target, &file).await {
                Ok(safety) => format!(
                    "restored backup {} at {} (safety backup {safety} taken first)",
                    backup.id,
                    chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")
                ),
                Err(why) => {
                    tracing::warn!(backup = %backup.id, error = %why, "a restore failed");
                    format!("the restore of backup {} failed: {why}", backup.id)
                }
            };
            let _ = db::databases::set_state(
                &this.db,
                target.id,
                DatabaseState::Running,
                Some(message),
                None,
            )
            .await;
        });
        Ok(db::databases::find(&self.db, database.id)
            .await?
            .unwrap_or(database))
    }

    async fn restore_into_same(
        self: &Arc<Self>,
        backup: &Backup,
        database: &Database,
        file: &Object,
    ) -> Result<Uuid, String> {
        let destination = match backup.destination_id {
            Some(id) => db::backups::destination(&self.db, id).await.ok().flatten(),
            None => None,
        }
        .ok_or("its destination was removed")?;
        // The safety backup: what the database holds now, before anything is replaced.
        let safety_id = Uuid::now_v7();
        let safety = db::backups::start(
            &self.db,
            NewBackup {
                id: safety_id,
                source: db::backups::Source::Database(database.id),
                source_name: database.name.clone(),
                source_kind: database.kind.into(),
                destination_id: destination.id,
                object_key: format!(
                    "{}/{}-{}-safety.{}",
                    database.name,
                    chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
                    crate::storage::store::key_suffix(safety_id),
                    kinds::extension(database.kind)
                ),
                created_by: backup.created_by,
                runner: self.runner.clone(),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        if let Err((step, why)) = self.take(&safety, database, &destination).await {
            self.backup_failed(&safety, step, &why).await;
            return Err(format!(
                "nothing was changed: the safety backup failed at {step}: {why}"
            ));
        }
        let this = self.clone();
        tokio::spawn(async move { this.verify_now(&safety_id).await });
        if database.kind == DatabaseKind::Redis {
            self.redis_restore(backup, database, file).await?;
            return Ok(safety_id);
        }
        if kinds::gzipped(database.kind) {
            self.sql_restore(database, file).await?;
            return Ok(safety_id);
        }
        let c = credentials(&self.sealer, database).map_err(|e| e.to_string())?;
        let container = database
            .container_id
            .clone()
            .ok_or("the database has no container")?;
        let end_others = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()";
        let cmd = [
            "psql",
            "-qtAX",
            "-U",
            &c.user,
            "-d",
            &c.database,
            "-c",
            end_others,
        ];
        if let Ok((code, said)) = self.docker.exec_output(&container, &cmd).await
            && code != 0
        {
            tracing::warn!(said, "cannot end the database's other connections");
        }
        self.pg_restore(&container, &c, file, true).await?;
        Ok(safety_id)
    }

    /// Restores `backup` into a new database of the same kind, version and team, named after
    /// the source; answers it (`restoring` until done).
    pub async fn restore_new(
        self: &Arc<Self>,
        backup: &Backup,
        by: Option<Uuid>,
    ) -> Result<Database, StorageError> {
        let file = self.restorable(backup).await?;
        let kind = backup
            .source_kind
            .database()
            .ok_or_else(|| StorageError::Invalid {
                field: "backup",
                message: "a volume backup is restored into its volume".into(),
            })?;
        let source = match backup.database_id {
            Some(id) => db::databases::find(&self.db, id).await?,
            None => None,
        };
        let (team, version) = match &source {
            Some(s) => (s.team_id, Some(s.version.clone())),
            None => (None, None),
        };
        let suffix = &Uuid::now_v7().simple().to_string()[24..];
        let base: String = backup.source_name.chars().take(48).collect();
        let name = format!("{base}-restored-{}", &suffix[..4]);
        let database = self
            .create(team, &name, kind, version.as_deref(), by)
            .await?;
        let (this, backup, target) = (self.clone(), backup.clone(), database.clone());
        tokio::spawn(async move {
            let outcome = this.restore_into_new(&backup, &target, &file).await;
            let message = match outcome {
                Ok(()) => format!("restored from backup {}", backup.id),
                Err(why) => format!("the restore of backup {} failed: {why}", backup.id),
            };
            let _ = db::databases::set_state(
                &this.db,
                target.id,
                DatabaseState::Running,
                Some(message),
                None,
            )
            .await;
        });
        Ok(database)
    }

    async fn restore_into_new(
        &self,
        backup: &Backup,
        database: &Database,
        file: &Object,
    ) -> Result<(), String> {
        // It comes up in the background first.
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.config.databases.start_timeout_secs + 30);
        let ready = loop {
            let now = db::databases::find(&self.db, database.id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the new database was deleted")?;
            match now.status {
                DatabaseState::Running => break now,
                DatabaseState::Failed => {
                    return Err(format!(
                        "the new database did not come up: {}",
                        now.message.unwrap_or_default()
                    ));
                }
                _ if tokio::time::Instant::now() > deadline => {
                    return Err("the new database did not come up in time".into());
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
            }
        };
        let message = "restoring".to_string();
        db::databases::set_state(
            &self.db,
            ready.id,
            DatabaseState::Restoring,
            Some(message),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        if ready.kind == DatabaseKind::Redis {
            return self.redis_restore(backup, &ready, file).await;
        }
        if kinds::gzipped(ready.kind) {
            return self.sql_restore(&ready, file).await;
        }
        let c = credentials(&self.sealer, &ready).map_err(|e| e.to_string())?;
        let container = ready
            .container_id
            .clone()
            .ok_or("the new database has no container")?;
        self.pg_restore(&container, &c, file, false).await
    }

    /// MySQL and MariaDB: the dump's statements run in the database (each dumped table is
    /// dropped and made again; tables the dump does not hold stay).
    async fn sql_restore(&self, database: &Database, file: &Object) -> Result<(), String> {
        let c = credentials(&self.sealer, database).map_err(|e| format!("{e:#}"))?;
        let container = database
            .container_id
            .clone()
            .ok_or("the database has no container")?;
        let mut input = super::gzip::gunzip(file.store.read(&file.key).await?);
        let cmd = kinds::sql_client(database.kind, &c, None);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        match self.docker.exec_from(&container, &cmd, &mut input).await {
            Ok((0, _)) => Ok(()),
            Ok((code, said)) => Err(format!("{} exited with {code}: {said}", cmd[0])),
            Err(e) => Err(format!("{}: {e}", cmd[0])),
        }
    }

    /// Redis: its container is replaced by one that starts from the backup's snapshot (the
    /// append-only file off, so the snapshot is what loads), the append-only file is turned
    /// on again (Redis rewrites it from what it loaded), and the usual container comes back
    /// on that file.
    async fn redis_restore(
        &self,
        backup: &Backup,
        database: &Database,
        file: &Object,
    ) -> Result<(), String> {
        let failed = |e: &dyn std::fmt::Display| format!("{e:#}");
        let c = credentials(&self.sealer, database).map_err(|e| failed(&e))?;
        let (env, cmd) = interface(database, &c);
        let network = self
            .docker
            .ensure_database_network(database.id, &self.config.containers.subnets())
            .await
            .map_err(|e| failed(&e))?;
        let run = DatabaseRun {
            id: database.id,
            name: container_name(database),
            image: database.image.clone(),
            env,
            cmd: kinds::from_snapshot(cmd),
            volume: database.docker_volume.clone(),
            data_dir: database.kind.data_dir().into(),
            port: database.kind.port(),
            public_port: None,
            memory_mb: i64::from(database.memory_limit_mb),
            throwaway: None,
            seed: Some(self.seed(backup, &file.store).await?),
        };
        let container = self
            .docker
            .run_database(run, &network)
            .await
            .map_err(|e| format!("cannot start from the snapshot: {e}"))?;
        self.until_ready(database.kind, &c, &container)
            .await
            .map_err(|e| format!("it did not come up from the snapshot: {e:#}"))?;
        let cli = |words: &[&str]| -> Vec<String> {
            ["redis-cli", "--no-auth-warning", "-a", &c.password]
                .iter()
                .chain(words)
                .map(|w| w.to_string())
                .collect()
        };
        let container = &container;
        let run_cli = |words: Vec<String>| async move {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match self.docker.exec_output(container, &words).await {
                Ok((0, text)) => Ok(text),
                Ok((code, text)) => Err(format!("redis-cli exited with {code}: {text}")),
                Err(e) => Err(e.to_string()),
            }
        };
        run_cli(cli(&["CONFIG", "SET", "appendonly", "yes"])).await?;
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(self.config.databases.start_timeout_secs);
        loop {
            let info = run_cli(cli(&["INFO", "persistence"])).await?;
            let has = |line: &str| info.lines().any(|l| l.trim() == line);
            if has("aof_enabled:1")
                && has("aof_rewrite_in_progress:0")
                && has("aof_rewrite_scheduled:0")
            {
                if !has("aof_last_bgrewrite_status:ok") {
                    return Err("Redis could not write its append-only file".into());
                }
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("Redis did not finish writing its append-only file in time".into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        self.bring_up(database.clone())
            .await
            .map_err(|e| format!("it did not come back on its append-only file: {e:#}"))
    }

    /// `pg_restore` of `file` into the database in `container`, in one transaction (`clean`:
    /// what the dump holds is dropped first).
    async fn pg_restore(
        &self,
        container: &str,
        c: &Credentials,
        file: &Object,
        clean: bool,
    ) -> Result<(), String> {
        let mut input = file.store.read(&file.key).await?;
        let mut cmd = vec![
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
        ];
        if clean {
            cmd.extend(["--clean", "--if-exists"]);
        }
        cmd.extend(["-U", &c.user, "-d", &c.database]);
        match self.docker.exec_from(container, &cmd, &mut input).await {
            Ok((0, _)) => Ok(()),
            Ok((code, said)) => Err(format!(
                "pg_restore exited with {code} and changed nothing: {said}"
            )),
            Err(e) => Err(format!("pg_restore: {e}")),
        }
    }
}
