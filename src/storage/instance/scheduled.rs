//! Instance backups taken by the server (now, or on the instance's schedule) into the same
//! destinations as database backups, with the same rows, retention and failure notices.
//!
//! The archive is the one `shard backup` writes, encrypted to the schedule's age recipients:
//! the server holds only public keys, so a stolen destination (or database) opens nothing.
//! It is written to a file in the data dir first (the tar and age writers are blocking; the
//! file bounds memory at a buffer and is removed whatever happens), then streamed into the
//! store, hashed on the way, and read back to compare the checksum. It is not `verified`
//! (that status means a restore was checked, which needs the private key): `shard restore`
//! checks every file of it.

use std::sync::Arc;

use uuid::Uuid;

use super::{Out, Seal, archive};
use crate::db::{self, backups::Backup, backups::Destination, backups::NewBackup, backups::Source};
use crate::model::BackupKind;
use crate::storage::databases::{Databases, StorageError};
use crate::storage::store::Store;

impl Databases {
    /// Starts a backup of the whole installation to `destination` (the first one when none
    /// is named), encrypted to `recipients` (`age1…`); it runs in the background.
    pub async fn instance_backup_now(
        self: &Arc<Self>,
        destination: Option<Uuid>,
        recipients: Vec<String>,
        by: Option<Uuid>,
    ) -> Result<Backup, StorageError> {
        if recipients.is_empty() {
            return Err(StorageError::Invalid {
                field: "recipients",
                message: "name an age public key (age1…) to encrypt the archive to, here or on \
                          the instance's backup schedule"
                    .into(),
            });
        }
        let keys = archive::recipients(&recipients).map_err(|e| StorageError::Invalid {
            field: "recipients",
            message: e.to_string(),
        })?;
        if db::backups::running_for(&self.db, Source::Instance).await? {
            return Err(StorageError::Conflict(
                "an instance backup is running already".into(),
            ));
        }
        let destination = self.destination_or_first(destination).await?;
        let id = Uuid::now_v7();
        let key = format!(
            "shard-instance/{}-{}.age",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            crate::storage::store::key_suffix(id)
        );
        let backup = db::backups::start(
            &self.db,
            NewBackup {
                id,
                source: Source::Instance,
                source_name: "shard".into(),
                source_kind: BackupKind::Instance,
                destination_id: destination.id,
                object_key: key,
                created_by: by,
                runner: self.runner.clone(),
            },
        )
        .await?;
        let (this, row) = (self.clone(), backup.clone());
        tokio::spawn(async move {
            let work = this.archive_into(&row, &destination, Seal::Recipients(keys));
            if let Err((step, why)) = this.bounded(&row, &destination, work).await {
                this.backup_failed(&row, step, &why).await;
            }
            if let Err(e) = this.apply_retention(Source::Instance).await {
                tracing::warn!(error = %format!("{e:#}"), "instance backup retention not applied this time");
            }
        });
        Ok(backup)
    }

    async fn archive_into(
        &self,
        backup: &Backup,
        destination: &Destination,
        seal: Seal,
    ) -> Result<(), (&'static str, String)> {
        let file = self
            .config
            .data_dir
            .join(format!("instance-backup-{}.age", backup.id.simple()));
        let outcome = self.archive_via(backup, destination, seal, &file).await;
        let _ = tokio::fs::remove_file(&file).await;
        outcome
    }

    async fn archive_via(
        &self,
        backup: &Backup,
        destination: &Destination,
        seal: Seal,
        file: &std::path::Path,
    ) -> Result<(), (&'static str, String)> {
        let done = super::backup(&self.config, Out::File(file.to_path_buf()), &seal)
            .await
            .map_err(|e| ("dump", format!("{e:#}")))?;
        let counts = serde_json::to_string(&done.manifest.counts).unwrap_or_default();
        db::backups::set_counts(&self.db, backup.id, &counts)
            .await
            .map_err(|e| ("dump", e.to_string()))?;
        let store = Store::open(destination, &self.sealer).map_err(|e| ("upload", e))?;
        let upload = |e: std::io::Error| {
            let at = store.describe(&backup.object_key);
            (
                "upload",
                format!(
                    "cannot store {at}: {}",
                    crate::storage::store::tidy(&e.to_string())
                ),
            )
        };
        let mut out = store
            .create(&backup.object_key)
            .await
            .map_err(|e| ("upload", e))?;
        let mut source = tokio::fs::File::open(file).await.map_err(upload)?;
        if let Err(e) = tokio::io::copy(&mut source, &mut out).await {
            out.abort().await;
            return Err(upload(e));
        }
        let (bytes, sha) = out.finish().await.map_err(upload)?;
        db::backups::stored(&self.db, backup.id, bytes as i64, &sha)
            .await
            .map_err(|e| ("upload", e.to_string()))?;
        // Read back: what the store holds is what was written.
        let stored = store
            .sha256(&backup.object_key)
            .await
            .map_err(|e| ("upload", e))?;
        if stored != sha {
            return Err((
                "upload",
                format!("the stored archive reads back as SHA-256 {stored}, not {sha}"),
            ));
        }
        Ok(())
    }
}
