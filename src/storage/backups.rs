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

use std::sync::Arc;

use uuid::Uuid;

use super::connection::interface;
use super::databases::{Credentials, Databases, StorageError, credentials};
use super::kinds;
use super::store::{Store, seal_secret};
use crate::db::backups::{Backup, Destination, NewBackup, Source};
use crate::db::databases::Database;
use crate::db::{self};
use crate::docker::{DatabaseRun, ExecError, Seed};
use crate::model::{BackupKind, DatabaseKind, DatabaseState, DestinationKind};

/// A destination to add.
pub struct NewDestination {
    pub name: String,
    pub kind: DestinationKind,
    pub path: Option<String>,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl NewDestination {
    /// A local directory.
    pub fn local(name: &str, path: &str) -> Self {
        NewDestination {
            name: name.into(),
            kind: DestinationKind::Local,
            path: Some(path.into()),
            endpoint: None,
            bucket: None,
            prefix: None,
            region: None,
            access_key: None,
            secret_key: None,
        }
    }
}

/// An S3 bucket name as S3 allows one: 3–63 lower-case letters, digits, `.` and `-`, starting
/// and ending with a letter or digit.
fn bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
}

/// A key prefix: `/`-separated segments of letters, digits, `.`, `_` and `-`, none `.`/`..`.
fn key_prefix(prefix: &str) -> bool {
    prefix.len() <= 200
        && prefix.trim_matches('/').split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
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
        let id = Uuid::now_v7();
        let mut row = Destination {
            id,
            name: new.name.clone(),
            kind: new.kind,
            path: None,
            endpoint: None,
            bucket: None,
            prefix: None,
            region: None,
            access_key: None,
            secret_key: None,
            created_by: by,
            created_at: chrono::Utc::now(),
        };
        let given = |value: Option<String>| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match new.kind {
            DestinationKind::Local => {
                let path = given(new.path)
                    .ok_or_else(|| invalid("path", "a local destination needs a path"))?;
                if crate::validate::static_dir(&path).is_err()
                    || path.trim_end_matches('/').is_empty()
                {
                    return Err(invalid(
                        "path",
                        "must be an absolute directory without '..', e.g. /var/backups/shard",
                    ));
                }
                tokio::fs::create_dir_all(&path)
                    .await
                    .map_err(|e| invalid("path", &format!("cannot write there: {e}")))?;
                row.path = Some(path);
            }
            DestinationKind::S3 => {
                let bucket = given(new.bucket)
                    .ok_or_else(|| invalid("bucket", "an S3 destination needs a bucket"))?;
                if !bucket_name(&bucket) {
                    return Err(invalid(
                        "bucket",
                        "must be 3-63 lower-case letters, digits, '.' and '-'",
                    ));
                }
                row.bucket = Some(bucket);
                if let Some(endpoint) = given(new.endpoint.clone()) {
                    let parsed = url::Url::parse(&endpoint).ok().filter(|u| {
                        matches!(u.scheme(), "http" | "https")
                            && u.host().is_some()
                            && u.query().is_none()
                            && u.username().is_empty()
                    });
                    if parsed.is_none() {
                        return Err(invalid(
                            "endpoint",
                            "must be an http(s) URL such as https://s3.example.com (empty for AWS)",
                        ));
                    }
                    row.endpoint = Some(endpoint.trim_end_matches('/').to_string());
                }
                if let Some(prefix) = given(new.prefix) {
                    if !key_prefix(&prefix) {
                        return Err(invalid(
                            "prefix",
                            "must be '/'-separated names of letters, digits, '.', '_' and '-'",
                        ));
                    }
                    row.prefix = Some(prefix.trim_matches('/').to_string());
                }
                if let Some(region) = given(new.region) {
                    if region.len() > 64
                        || !region
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    {
                        return Err(invalid("region", "must be a region name such as eu-west-1"));
                    }
                    row.region = Some(region);
                }
                let (access, secret) = (given(new.access_key), given(new.secret_key));
                let (Some(access), Some(secret)) = (access, secret) else {
                    return Err(invalid(
                        "secret_key",
                        "an S3 destination needs access_key and secret_key",
                    ));
                };
                if access.len() > 255 || secret.len() > 1024 {
                    return Err(invalid("access_key", "is too long"));
                }
                row.access_key = Some(access);
                row.secret_key = Some(seal_secret(&self.sealer, id, &secret));
            }
        }
        // A destination is added only once a write to it worked, with its credentials.
        let store = Store::open(&row, &self.sealer).map_err(|e| invalid("kind", &e))?;
        if let Err(e) = store.probe().await {
            let field = if row.kind == DestinationKind::S3 {
                "bucket"
            } else {
                "path"
            };
            return Err(invalid(field, &format!("cannot write there: {e}")));
        }
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
        kinds::supported(database.kind).map_err(StorageError::Conflict)?;
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
            &id.simple().to_string()[..8],
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
        let (counts, result) = tokio::join!(
            self.count(database.kind, &container, &c),
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
        let cmd = kinds::count_command(kind, c);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        match self.docker.exec_output(container, &cmd).await {
            Ok((0, text)) => Ok(kinds::parse_counts(kind, &text)),
            Ok((code, text)) => Err(format!("{} exited with {code}: {text}", cmd[0])),
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
            root_password: None,
        };
        let name = format!("shard-verify-{}", backup.id.simple());
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
            throwaway: true,
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

    /// At startup: backups cut off by a stop are failed and their partial files removed;
    /// throwaway copies left by a check are removed.
    pub async fn recover_backups(&self) -> anyhow::Result<()> {
        for backup in db::backups::fail_interrupted(&self.db).await? {
            if let Some(id) = backup.destination_id
                && let Some(destination) = db::backups::destination(&self.db, id).await?
                && let Ok(store) = Store::open(&destination, &self.sealer)
            {
                store.remove_partial(&backup.object_key).await;
            }
        }
        self.docker.remove_throwaways().await?;
        Ok(())
    }
}
