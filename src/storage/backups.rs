//! Backups of one-click databases, and where they go. A backup is a stream: the database's
//! own dump tool runs in its container (`pg_dump -Fc`, compressed by the format) and its output
//! goes through a SHA-256 straight into the destination, never whole in memory; a local
//! destination gets it as `<key>.partial`, renamed into place only once complete, so a crash
//! or a full disk never leaves a file that looks whole. What the source holds (rows per table,
//! counted while the dump runs) is recorded with it; writes during the dump can make the two
//! differ, which verification then reports.
//!
//! Every backup is then verified: its checksum is read back, it is restored into a throwaway
//! copy of the database (same image, no network, removed after) and the rows per table are
//! counted there. Only a backup whose restore matched is `verified`; any failure is `failed`
//! with its step (`dump`, `upload`, `verify`) and the reason. A backup cut off by a stop of
//! shard is failed at the next start, and its partial file removed.
//!
//! Restores are in `restore`. This version backs up PostgreSQL to local destinations.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;
use uuid::Uuid;

use super::connection::interface;
use super::databases::{Credentials, Databases, StorageError, credentials};
use crate::db::backups::{Backup, Destination, NewBackup};
use crate::db::databases::Database;
use crate::db::{self};
use crate::docker::{DatabaseRun, ExecError};
use crate::model::{DatabaseKind, DatabaseState, DestinationKind};

/// Rows per table, as `schema.table|rows` lines, in one query (no table is named twice).
const COUNT_ROWS: &str = "SELECT n.nspname || '.' || c.relname, \
     (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
     n.nspname, c.relname), false, true, '')))[1]::text \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1";

/// A destination to add.
pub struct NewDestination {
    pub name: String,
    pub kind: DestinationKind,
    pub path: Option<String>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            this.hash.update(&buf[..*n]);
            this.bytes += *n as u64;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The SHA-256 of the file at `path` (hex), read in 1 MiB pieces; why it cannot be read.
pub(super) async fn file_sha256(path: &Path) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = tokio::fs::File::open(path).await.map_err(cannot)?;
    let (mut hash, mut buf) = (Sha256::new(), vec![0u8; 1 << 20]);
    loop {
        match file.read(&mut buf).await.map_err(cannot)? {
            0 => return Ok(hex::encode(hash.finalize())),
            n => hash.update(&buf[..n]),
        }
    }
}

/// Parses `schema.table|rows` lines.
fn parse_counts(text: &str) -> std::collections::BTreeMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let (table, rows) = line.rsplit_once('|')?;
            Some((table.to_string(), rows.trim().parse().ok()?))
        })
        .collect()
}

/// Where backup `key` lives in a local destination.
pub(super) fn local_file(destination: &Destination, key: &str) -> Result<PathBuf, StorageError> {
    let dir = destination
        .path
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("the local destination has no path"))?;
    Ok(Path::new(dir).join(key))
}

impl Databases {
    /// Adds a destination (instance admins). A local one is a directory this process can
    /// write; it is made when missing.
    pub async fn add_destination(
        &self,
        new: NewDestination,
        by: Option<Uuid>,
    ) -> Result<Destination, StorageError> {
        let invalid = |field, message: &str| StorageError::Invalid {
            field,
            message: message.to_string(),
        };
        let path = match new.kind {
            DestinationKind::S3 => {
                return Err(invalid(
                    "kind",
                    "S3 destinations are not available in this version; use a local directory",
                ));
            }
            DestinationKind::Local => new
                .path
                .ok_or_else(|| invalid("path", "a local destination needs a path"))?,
        };
        if crate::validate::static_dir(&path).is_err() || path.trim_end_matches('/').is_empty() {
            return Err(invalid(
                "path",
                "must be an absolute directory without '..', e.g. /var/backups/shard",
            ));
        }
        let probe = Path::new(&path).join(format!(".shard-probe-{}", Uuid::now_v7().simple()));
        let writable = async {
            tokio::fs::create_dir_all(&path).await?;
            tokio::fs::write(&probe, b"").await?;
            tokio::fs::remove_file(&probe).await
        };
        if let Err(e) = writable.await {
            return Err(invalid("path", &format!("cannot write there: {e}")));
        }
        let row = Destination {
            id: Uuid::now_v7(),
            name: new.name.clone(),
            kind: new.kind,
            path: Some(path),
            endpoint: None,
            bucket: None,
            prefix: None,
            region: None,
            access_key: None,
            secret_key: None,
            created_by: by,
            created_at: chrono::Utc::now(),
        };
        db::backups::add_destination(&self.db, row)
            .await?
            .ok_or_else(|| {
                StorageError::Conflict(format!("a destination named '{}' exists", new.name))
            })
    }

    /// Starts a backup of `database` to `destination` (the first one when none is named);
    /// it runs, then is verified, in the background.
    pub async fn backup_now(
        self: &Arc<Self>,
        database: &Database,
        destination: Option<Uuid>,
        by: Option<Uuid>,
    ) -> Result<Backup, StorageError> {
        if database.kind != DatabaseKind::Postgres {
            return Err(StorageError::Conflict(format!(
                "backups of {} databases are not available in this version",
                database.kind
            )));
        }
        if database.status != DatabaseState::Running || database.container_id.is_none() {
            return Err(StorageError::Conflict(format!(
                "the database is {}; start it first",
                database.status
            )));
        }
        let destination = match destination {
            Some(id) => db::backups::destination(&self.db, id)
                .await?
                .ok_or_else(|| StorageError::Invalid {
                    field: "destination_id",
                    message: "no such destination".into(),
                })?,
            None => db::backups::destinations(&self.db)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    StorageError::Conflict(
                        "there is no backup destination yet; an admin adds one under System".into(),
                    )
                })?,
        };
        let id = Uuid::now_v7();
        let key = format!(
            "{}/{}-{}.dump",
            database.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            &id.simple().to_string()[..8]
        );
        let backup = db::backups::start(
            &self.db,
            NewBackup {
                id,
                database_id: database.id,
                source_name: database.name.clone(),
                source_kind: database.kind,
                destination_id: destination.id,
                object_key: key,
                created_by: by,
            },
        )
        .await?;
        let (this, row, database) = (self.clone(), backup.clone(), database.clone());
        tokio::spawn(async move {
            match this.take(&row, &database, &destination).await {
                Ok(()) => this.verify_now(&row.id).await,
                Err((step, why)) => this.backup_failed(&row, step, &why).await,
            }
        });
        Ok(backup)
    }

    /// Dumps into the destination; the failing step and why on failure.
    pub(super) async fn take(
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
        let file = local_file(destination, &backup.object_key).map_err(|e| dump(e.to_string()))?;
        let partial = file.with_extension("dump.partial");
        let upload =
            |e: std::io::Error| ("upload", format!("cannot write {}: {e}", partial.display()));
        if let Some(dir) = partial.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(upload)?;
        }
        let out = tokio::fs::File::create(&partial).await.map_err(upload)?;
        let mut out = Hashing {
            inner: tokio::io::BufWriter::with_capacity(1 << 20, out),
            hash: Sha256::new(),
            bytes: 0,
        };
        // The rows are counted while the dump runs (on another core, not after it): the
        // count is what verification compares a restore with.
        let cmd = ["pg_dump", "-Fc", "-U", &c.user, "-d", &c.database];
        let (counts, result) = tokio::join!(
            self.count_rows(&container, &c),
            self.docker.exec_to(&container, &cmd, &mut out)
        );
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
            Ok((code, errors)) => Err(dump(format!("pg_dump exited with {code}: {errors}"))),
            Err(ExecError::Write(e)) => Err(upload(e)),
            Err(ExecError::Engine(e)) => Err(dump(e.to_string())),
        };
        if let Err(failure) = outcome {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(failure);
        }
        let synced = async {
            use tokio::io::AsyncWriteExt;
            out.inner.flush().await?;
            out.inner.get_ref().sync_all().await?;
            tokio::fs::rename(&partial, &file).await
        };
        if let Err(e) = synced.await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(upload(e));
        }
        let sha = hex::encode(out.hash.finalize());
        db::backups::stored(&self.db, backup.id, out.bytes as i64, &sha)
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

    /// Rows per table in the database in `container`.
    async fn count_rows(
        &self,
        container: &str,
        c: &Credentials,
    ) -> Result<std::collections::BTreeMap<String, i64>, String> {
        let cmd = [
            "psql",
            "-qtAX",
            "-F",
            "|",
            "-U",
            &c.user,
            "-d",
            &c.database,
            "-c",
            COUNT_ROWS,
        ];
        match self.docker.exec_output(container, &cmd).await {
            Ok((0, text)) => Ok(parse_counts(&text)),
            Ok((code, text)) => Err(format!("psql exited with {code}: {text}")),
            Err(e) => Err(e.to_string()),
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
        let verified = self.verify(&backup).await;
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
        let file = local_file(&destination, &backup.object_key).map_err(|e| e.to_string())?;
        let expected = backup.sha256.clone().ok_or("it was never stored whole")?;
        // The bytes first: a truncated or changed file is named as such.
        let actual = file_sha256(&file).await?;
        if actual != expected {
            return Err(format!(
                "the stored file is not what was backed up (SHA-256 {actual}, expected {expected}): \
                 it was truncated or changed"
            ));
        }
        let expected_counts: std::collections::BTreeMap<String, i64> = backup
            .source_counts
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let restored = self.restore_throwaway(backup, &file).await?;
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

    /// Restores `file` into a throwaway copy of the database and answers its rows per table;
    /// the copy is removed whatever happens.
    async fn restore_throwaway(
        &self,
        backup: &Backup,
        file: &Path,
    ) -> Result<std::collections::BTreeMap<String, i64>, String> {
        let image = match backup.database_id {
            Some(id) => db::databases::find(&self.db, id).await.ok().flatten(),
            None => None,
        }
        .map(|d| d.image)
        .unwrap_or_else(|| {
            let c = &self.config.databases;
            c.images.postgres.replace("{version}", &c.versions.postgres)
        });
        let c = Credentials {
            user: "app".into(),
            password: hex::encode(crate::secrets::random_bytes::<16>()),
            database: "verify".into(),
            root_password: None,
        };
        let name = format!("shard-verify-{}", backup.id.simple());
        let probe = Database {
            id: backup.id,
            team_id: None,
            name: name.clone(),
            kind: backup.source_kind,
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
        let run = DatabaseRun {
            id: backup.id,
            name: name.clone(),
            image,
            env,
            cmd,
            volume: String::new(),
            data_dir: String::new(),
            port: backup.source_kind.port(),
            public_port: None,
            memory_mb: i64::from(self.config.databases.memory_limit_mb),
            throwaway: true,
        };
        let result = async {
            let container = self
                .docker
                .run_database(run, "none")
                .await
                .map_err(|e| format!("cannot start a throwaway copy: {e}"))?;
            self.until_ready(backup.source_kind, &c, &container)
                .await
                .map_err(|e| format!("the throwaway copy did not come up: {e:#}"))?;
            let mut input = tokio::fs::File::open(file)
                .await
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
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
                Ok((code, said)) => return Err(format!("pg_restore exited with {code}: {said}")),
                Err(e) => return Err(format!("pg_restore: {e}")),
            }
            self.count_rows(&container, &c).await
        }
        .await;
        if let Err(e) = self.docker.remove_named(&name).await {
            tracing::warn!(error = %e, "cannot remove a throwaway copy; the next start will");
        }
        result
    }

    /// At startup: backups cut off by a stop are failed and their partial files removed;
    /// throwaway copies left by a check are removed.
    pub async fn recover_backups(&self) -> anyhow::Result<()> {
        for backup in db::backups::fail_interrupted(&self.db).await? {
            if let Some(id) = backup.destination_id
                && let Some(destination) = db::backups::destination(&self.db, id).await?
                && let Ok(file) = local_file(&destination, &backup.object_key)
            {
                let _ = tokio::fs::remove_file(file.with_extension("dump.partial")).await;
            }
        }
        self.docker.remove_throwaways().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_read_from_psql_lines() {
        let counts = super::parse_counts("public.notes|3\npublic.empty|0\nnoise\n");
        assert_eq!(counts.len(), 2);
        assert_eq!(counts["public.notes"], 3);
        assert_eq!(counts["public.empty"], 0);
    }
}
