//! Backups of one-click databases. A backup is a stream: the database's own dump tool runs in
//! its container (the commands per kind are in `kinds`) and its output goes, gzipped when it
//! is SQL text, through a SHA-256 straight into the destination (`store`: a local directory or
//! an S3 bucket), never whole in memory and never visible before it is whole. What the source
//! holds (rows per table, keys per Redis database; counted while the dump runs) is recorded
//! with it; writes during the dump can make the two differ, which verification then reports.
//!
//! Every backup is then verified: its checksum is read back, it is restored into a throwaway
//! copy of the database (same image, no network, an anonymous volume, removed after) and
//! counted there. Only a backup whose restore matched is `verified`; any failure is `failed`
//! with its step (`dump`, `upload`, `verify`), the reason, and a `backup.failed` notice. A
//! backup cut off by a stop of shard is failed at the next start, its partial file removed.
//!
//! Destinations are in `destinations`, restores in `restore`, volume backups in `volumes`,
//! schedules and retention in `schedules`.

use std::sync::Arc;

use uuid::Uuid;

use super::connection::interface;
use super::databases::{Credentials, Databases, StorageError, credentials};
use super::gzip::GzipWriter;
use super::kinds;
use super::store::Store;
use crate::db::backups::{Backup, Destination, NewBackup, Source};
use crate::db::databases::Database;
use crate::db::{self};
use crate::docker::{DatabaseRun, ExecError, Seed};
use crate::model::{BackupKind, DatabaseKind, DatabaseState};

/// How often a running backup's row says its runner is alive; one silent for
/// `STALE_AFTER` is failed by any instance.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(20);
pub(super) const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(90);

/// The throwaway copy that verifies `backup`.
fn throwaway_name(backup: &Backup) -> String {
    format!("shard-verify-{}", backup.id.simple())
}

impl Databases {
    /// Starts a backup of `database` to `destination` (the first one when none is named);
    /// it runs, then is verified, in the background.
    pub async fn backup_now(
        self: &Arc<Self>,
        database: &Database,
        destination: Option<Uuid>,
        by: Option<Uuid>,
    ) -> Result<Backup, StorageError> {
        if database.status != DatabaseState::Running || database.container_id.is_none() {
            return Err(StorageError::Conflict(format!(
                "the database is {}; start it first",
                database.status
            )));
        }
        let destination = self.destination_or_first(destination).await?;
        let id = Uuid::now_v7();
        let key = format!(
            "{}/{}-{}.{}",
            database.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            crate::storage::store::key_suffix(id),
            kinds::extension(database.kind)
        );
        let backup = db::backups::start(
            &self.db,
            NewBackup {
                id,
                source: Source::Database(database.id),
                source_name: database.name.clone(),
                source_kind: database.kind.into(),
                destination_id: destination.id,
                object_key: key,
                created_by: by,
                runner: self.runner.clone(),
            },
        )
        .await?;
        let (this, row, database) = (self.clone(), backup.clone(), database.clone());
        tokio::spawn(async move {
            match this.take(&row, &database, &destination).await {
                Ok(()) => this.verify_now(&row.id).await,
                Err((step, why)) => this.backup_failed(&row, step, &why).await,
            }
            // A scheduled database's retention runs after each of its backups.
            if let Err(e) = this.apply_retention(Source::Database(database.id)).await {
                tracing::warn!(database = %database.name, error = %format!("{e:#}"), "retention not applied this time");
            }
        });
        Ok(backup)
    }

    /// Dumps into the destination, within `databases.backup_timeout_secs`; the failing step
    /// and why on failure.
    pub(super) async fn take(
        &self,
        backup: &Backup,
        database: &Database,
        destination: &Destination,
    ) -> Result<(), (&'static str, String)> {
        self.bounded(
            backup,
            destination,
            self.dump(backup, database, destination),
        )
        .await
    }

    /// `work` (a dump into `destination`), failed at `dump` when it outlasts
    /// `databases.backup_timeout_secs`; what it left half-written is removed.
    pub(super) async fn bounded(
        &self,
        backup: &Backup,
        destination: &Destination,
        work: impl std::future::Future<Output = Result<(), (&'static str, String)>>,
    ) -> Result<(), (&'static str, String)> {
        let limit = std::time::Duration::from_secs(self.config.databases.backup_timeout_secs);
        // Meanwhile the row says every HEARTBEAT that this process still takes it.
        let beat = async {
            let mut every = tokio::time::interval(HEARTBEAT);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = db::backups::heartbeat(&self.db, backup.id).await {
                    tracing::warn!(backup = %backup.id, error = %e, "cannot record a backup's heartbeat");
                }
            }
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(limit, work) => outcome,
            never = beat => never,
        };
        match outcome {
            Ok(done) => done,
            Err(_) => {
                // The dump's output is dropped, so the process writing it ends; a local
                // partial file goes, an S3 upload is never completed.
                if let Ok(store) = Store::open(destination, &self.sealer) {
                    store.remove_partial(&backup.object_key).await;
                }
                Err((
                    "dump",
                    format!(
                        "it took longer than {} s (databases.backup_timeout_secs)",
                        limit.as_secs()
                    ),
                ))
            }
        }
    }

    async fn dump(
        &self,
        backup: &Backup,
        database: &Database,
        destination: &Destination,
    ) -> Result<(), (&'static str, String)> {
        let dump = |e: String| ("dump", e);
        let c = credentials(&self.sealer, database).map_err(|e| dump(format!("{e:#}")))?;
        let container = database
            .container_id
            .clone()
            .ok_or_else(|| dump("the database has no container".into()))?;
        let store = Store::open(destination, &self.sealer).map_err(|e| ("upload", e))?;
        let mut out = store
            .create(&backup.object_key)
            .await
            .map_err(|e| ("upload", e))?;
        let upload = |e: std::io::Error| {
            let at = store.describe(&backup.object_key);
            (
                "upload",
                format!("cannot store {at}: {}", super::store::tidy(&e.to_string())),
            )
        };
        // The rows are counted while the dump runs (on another core, not after it): the
        // count is what verification compares a restore with.
        let cmd = kinds::dump_command(database.kind, &c);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let dumped = async {
            if !kinds::gzipped(database.kind) {
                return self.docker.exec_to(&container, &cmd, &mut out).await;
            }
            let mut gzip = GzipWriter::new(&mut out);
            let result = self.docker.exec_to(&container, &cmd, &mut gzip).await?;
            gzip.finish().await.map_err(ExecError::Write)?;
            Ok(result)
        };
        let (counts, result) = tokio::join!(self.count(database.kind, &container, &c), dumped);
        let counted = async {
            let counts =
                counts.map_err(|e| dump(format!("cannot count the source's rows: {e}")))?;
            let counts = serde_json::to_string(&counts).map_err(|e| dump(e.to_string()))?;
            db::backups::set_counts(&self.db, backup.id, &counts)
                .await
                .map_err(|e| dump(e.to_string()))
        };
        let outcome = match result {
            Ok((0, _)) => counted.await,
            Ok((code, errors)) => Err(dump(format!("{} exited with {code}: {errors}", cmd[0]))),
            Err(ExecError::Write(e)) => Err(upload(e)),
            Err(ExecError::Engine(e)) => Err(dump(e.to_string())),
        };
        if let Err(failure) = outcome {
            out.abort().await;
            return Err(failure);
        }
        let (bytes, sha) = out.finish().await.map_err(upload)?;
        db::backups::stored(&self.db, backup.id, bytes as i64, &sha)
            .await
            .map_err(|e| ("upload", e.to_string()))?;
        Ok(())
    }

    /// Records the failure and tells whoever asked for the backup and whoever made the
    /// database (their `backup.failed` channels): a failure is never quiet.
    pub(super) async fn backup_failed(&self, backup: &Backup, step: &str, why: &str) {
        tracing::warn!(backup = %backup.id, step, error = %why, "a backup failed");
        if let Err(e) = db::backups::failed(&self.db, backup.id, step, why).await {
            tracing::error!(backup = %backup.id, error = %e, "cannot record a failed backup");
        }
        let mut recipients: Vec<Uuid> = backup.created_by.into_iter().collect();
        if let Some(id) = backup.database_id
            && let Ok(Some(database)) = db::databases::find(&self.db, id).await
            && let Some(owner) = database.created_by
            && !recipients.contains(&owner)
        {
            recipients.push(owner);
        }
        let notice = crate::notifications::Notice {
            event: "backup.failed".into(),
            title: format!("Backup of {} failed at {step}", backup.source_name),
            body: why.chars().take(1000).collect(),
            project_id: None,
            project: None,
            deployment_id: None,
            url: Some(format!("{}/databases", self.config.public_url())),
        };
        self.notifier.emit_to_all(&recipients, notice).await;
    }

    /// What the database in `container` holds: rows per table, or keys per Redis database.
    pub(super) async fn count(
        &self,
        kind: DatabaseKind,
        container: &str,
        c: &Credentials,
    ) -> Result<std::collections::BTreeMap<String, i64>, String> {
        let run = |cmd: Vec<String>| async move {
            let words: Vec<&str> = cmd.iter().map(String::as_str).collect();
            match self.docker.exec_output(container, &words).await {
                Ok((0, text)) => Ok(text),
                Ok((code, text)) => Err(format!("{} exited with {code}: {text}", words[0])),
                Err(e) => Err(e.to_string()),
            }
        };
        let text = run(kinds::count_command(kind, c)).await?;
        if !kinds::gzipped(kind) {
            return Ok(kinds::parse_counts(kind, &text));
        }
        // MySQL and MariaDB: the tables first, then one query counting each.
        let tables: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        match kinds::count_tables_query(&tables) {
            Some(query) => {
                let text = run(kinds::sql_client(kind, c, Some(&query))).await?;
                Ok(kinds::parse_counts(kind, &text))
            }
            None => Ok(std::collections::BTreeMap::new()),
        }
    }

    /// Verifies backup `id` (in the background of its caller): checksum, restore into a
    /// throwaway copy, rows per table compared.
    pub async fn verify_now(&self, id: &Uuid) {
        let Ok(Some(backup)) = db::backups::find(&self.db, *id).await else {
            return;
        };
        let checking = || {
            self.checking
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if !checking().insert(backup.id) {
            return; // being checked already
        }
        let limit = std::time::Duration::from_secs(self.config.databases.backup_timeout_secs);
        let verified = match tokio::time::timeout(limit, self.verify(&backup)).await {
            Ok(verified) => verified,
            Err(_) => {
                let _ = self.docker.remove_named(&throwaway_name(&backup)).await;
                Err(format!(
                    "verification took longer than {} s (databases.backup_timeout_secs)",
                    limit.as_secs()
                ))
            }
        };
        checking().remove(&backup.id);
        match verified {
            Ok(()) => {
                let _ = db::backups::verified(&self.db, backup.id).await;
            }
            Err(why) => self.backup_failed(&backup, "verify", &why).await,
        }
    }

    async fn verify(&self, backup: &Backup) -> Result<(), String> {
        let destination = match backup.destination_id {
            Some(id) => db::backups::destination(&self.db, id).await.ok().flatten(),
            None => None,
        }
        .ok_or("its destination was removed")?;
        let store = Store::open(&destination, &self.sealer)?;
        let expected = backup.sha256.clone().ok_or("it was never stored whole")?;
        let expected_counts: std::collections::BTreeMap<String, i64> = backup
            .source_counts
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if backup.source_kind == BackupKind::Volume {
            let read = self.read_volume_backup(backup, &store).await?;
            if read != expected_counts {
                return Err(format!(
                    "the archive holds {} files and {} bytes; the volume had {} and {}",
                    read.get("files").copied().unwrap_or(0),
                    read.get("bytes").copied().unwrap_or(0),
                    expected_counts.get("files").copied().unwrap_or(0),
                    expected_counts.get("bytes").copied().unwrap_or(0)
                ));
            }
            return Ok(());
        }
        // The bytes first: a truncated or changed file is named as such.
        let actual = store.sha256(&backup.object_key).await?;
        if actual != expected {
            return Err(format!(
                "the stored file is not what was backed up (SHA-256 {actual}, expected {expected}): \
                 it was truncated or changed"
            ));
        }
        let restored = self.restore_throwaway(backup, &store).await?;
        if restored != expected_counts {
            let differences: Vec<String> = expected_counts
                .iter()
                .filter(|(t, n)| restored.get(*t) != Some(n))
                .map(|(t, n)| {
                    format!(
                        "{t}: {n} rows in the source, {} restored",
                        restored.get(t).copied().unwrap_or(0)
                    )
                })
                .collect();
            return Err(format!(
                "the restore does not match the source: {}",
                differences.join("; ")
            ));
        }
        Ok(())
    }

    /// Restores the backup from `store` into a throwaway copy of the database and answers its
    /// rows per table; the copy is removed whatever happens.
    async fn restore_throwaway(
        &self,
        backup: &Backup,
        store: &Store,
    ) -> Result<std::collections::BTreeMap<String, i64>, String> {
        let kind = backup
            .source_kind
            .database()
            .ok_or("a volume backup has no database to restore into")?;
        let image = match backup.database_id {
            Some(id) => db::databases::find(&self.db, id).await.ok().flatten(),
            None => None,
        }
        .map(|d| d.image)
        .unwrap_or_else(|| {
            let (template, version) = self.image_of(kind);
            template.replace("{version}", version)
        });
        let c = Credentials {
            user: "app".into(),
            password: hex::encode(crate::secrets::random_bytes::<16>()),
            database: "verify".into(),
            root_password: kinds::gzipped(kind)
                .then(|| hex::encode(crate::secrets::random_bytes::<16>())),
        };
        let name = throwaway_name(backup);
        let probe = Database {
            id: backup.id,
            team_id: None,
            name: name.clone(),
            kind,
            version: String::new(),
            image: image.clone(),
            status: DatabaseState::Starting,
            message: None,
            container_id: None,
            docker_volume: String::new(),
            credentials: Vec::new(),
            public_port: None,
            memory_limit_mb: self.config.databases.memory_limit_mb as i32,
            created_by: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let (env, cmd) = interface(&probe, &c);
        // Redis loads the snapshot when it starts; Postgres restores into a running server.
        let (cmd, seed) = if kind == DatabaseKind::Redis {
            (
                kinds::from_snapshot(cmd),
                Some(self.seed(backup, store).await?),
            )
        } else {
            (cmd, None)
        };
        let run = DatabaseRun {
            id: backup.id,
            name: name.clone(),
            image,
            env,
            cmd,
            volume: String::new(),
            data_dir: kind.data_dir().into(),
            port: kind.port(),
            public_port: None,
            memory_mb: i64::from(self.config.databases.memory_limit_mb),
            throwaway: Some(self.runner.clone()),
            seed,
        };
        let result = async {
            let container = self
                .docker
                .run_database(run, "none")
                .await
                .map_err(|e| format!("cannot start a throwaway copy: {e}"))?;
            self.until_ready(kind, &c, &container)
                .await
                .map_err(|e| format!("the throwaway copy did not come up: {e:#}"))?;
            if kinds::gzipped(kind) {
                let mut input = super::gzip::gunzip(store.read(&backup.object_key).await?);
                let cmd = kinds::sql_client(kind, &c, None);
                let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                match self.docker.exec_from(&container, &cmd, &mut input).await {
                    Ok((0, _)) => {}
                    Ok((code, said)) => {
                        return Err(format!("{} exited with {code}: {said}", cmd[0]));
                    }
                    Err(e) => return Err(format!("{}: {e}", cmd[0])),
                }
            }
            if kind == DatabaseKind::Postgres {
                let mut input = store.read(&backup.object_key).await?;
                let cmd = [
                    "pg_restore",
                    "--no-owner",
                    "--exit-on-error",
                    "-U",
                    &c.user,
                    "-d",
                    &c.database,
                ];
                match self.docker.exec_from(&container, &cmd, &mut input).await {
                    Ok((0, _)) => {}
                    Ok((code, said)) => {
                        return Err(format!("pg_restore exited with {code}: {said}"));
                    }
                    Err(e) => return Err(format!("pg_restore: {e}")),
                }
            }
            self.count(kind, &container, &c).await
        }
        .await;
        if let Err(e) = self.docker.remove_named(&name).await {
            tracing::warn!(error = %e, "cannot remove a throwaway copy; the next start will");
        }
        result
    }

    /// Backup's snapshot as a file to put into a fresh server's data directory (Redis).
    pub(super) async fn seed(&self, backup: &Backup, store: &Store) -> Result<Seed, String> {
        let size = backup
            .size_bytes
            .ok_or("the backup was never stored whole")?;
        Ok(Seed {
            name: "dump.rdb".into(),
            size: size as u64,
            reader: store.read(&backup.object_key).await?,
        })
    }

    /// At startup: backups this data dir's process was running when it stopped are failed
    /// and their partial files removed, and the throwaway containers and instance-backup
    /// scratch files it left are removed.
    pub async fn recover_backups(&self) -> anyhow::Result<()> {
        self.fail_orphans(Some(&self.runner)).await?;
        super::instance::sweep_leftovers(&self.config.data_dir);
        self.docker.remove_throwaways(&self.runner).await?;
        Ok(())
    }

    /// Fails the running backups whose runner is gone (`mine`, or silent past `STALE_AFTER`:
    /// another instance that died), removing what they half-wrote.
    pub(super) async fn fail_orphans(&self, mine: Option<&str>) -> anyhow::Result<()> {
        let stale = chrono::Utc::now() - STALE_AFTER;
        for backup in db::backups::orphans(&self.db, mine, stale).await? {
            self.backup_failed(&backup, "dump", "shard stopped while the backup ran")
                .await;
            if let Some(id) = backup.destination_id
                && let Some(destination) = db::backups::destination(&self.db, id).await?
                && let Ok(store) = Store::open(&destination, &self.sealer)
            {
                store.remove_partial(&backup.object_key).await;
            }
        }
        Ok(())
    }
}
