//! Backups of project volumes: the volume's files as a tar, read through the engine's archive
//! API (a container that mounts the volume and never runs), gzip-compressed on the way into
//! the destination, never whole in memory; files and bytes are counted from the tar's headers
//! as it passes. The volume is read while the app may write to it: a file written meanwhile
//! may be in its old or new state (stop writes, or back up the database instead, for a
//! consistent copy).
//!
//! Verification reads the backup back: its checksum, the gzip stream to its end (its CRC),
//! every tar header, and the files and bytes counted, compared with what the backup counted.
//!
//! A restore never overwrites: the backup is unpacked into a new engine volume, the volume
//! then points at it, and the engine volume it held before is kept as a detached volume
//! (listed for admins, kept `retention.detached_volumes_days`). The project's next deployment
//! mounts the restored files; the HTTP layer starts one.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::databases::{Databases, StorageError};
use super::store::Store;
use crate::db::backups::{Backup, Destination, NewBackup, Source};
use crate::db::volumes::Volume;
use crate::db::{self};
use crate::model::BackupKind;

/// Counts a tar stream's regular files and their bytes from its headers, fed in pieces.
#[derive(Default)]
pub(super) struct TarCount {
    files: i64,
    bytes: i64,
    header: Vec<u8>,
    skip: u64,
}

impl TarCount {
    pub(super) fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (512 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() < 512 {
                continue;
            }
            let block = std::mem::take(&mut self.header);
            if block.iter().all(|b| *b == 0) {
                continue; // the end-of-archive blocks
            }
            let header = tar::Header::from_byte_slice(&block);
            let stored = header
                .cksum()
                .map_err(|e| format!("a tar header is damaged: {e}"))?;
            let sum: u32 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u32::from(*b)
                    }
                })
                .sum();
            if sum != stored {
                return Err(
                    "a tar header's checksum does not match: the archive is damaged".into(),
                );
            }
            let size = header
                .size()
                .map_err(|e| format!("a tar header is damaged: {e}"))?;
            if header.entry_type().is_file() {
                self.files += 1;
                self.bytes += size as i64;
            }
            self.skip = size.div_ceil(512) * 512;
        }
        Ok(())
    }

    /// The counts; an archive that ends inside an entry is refused.
    pub(super) fn finish(self) -> Result<BTreeMap<String, i64>, String> {
        if self.skip > 0 || !self.header.is_empty() {
            return Err("the archive ends inside an entry: it is truncated".into());
        }
        Ok(BTreeMap::from([
            ("files".to_string(), self.files),
            ("bytes".to_string(), self.bytes),
        ]))
    }
}

/// Moves what a gzip coder wrote so far out of its buffer.
fn drain(buffer: &mut Vec<u8>) -> Vec<u8> {
    std::mem::take(buffer)
}

impl Databases {
    /// Starts a backup of `volume` to `destination` (the first one when none is named); it is
    /// taken, then verified, in the background.
    pub async fn volume_backup_now(
        self: &Arc<Self>,
        volume: &Volume,
        destination: Option<Uuid>,
        by: Option<Uuid>,
    ) -> Result<Backup, StorageError> {
        let destination = self.destination_or_first(destination).await?;
        let id = Uuid::now_v7();
        let key = format!(
            "volumes/{}-{}/{}-{}.tar.gz",
            volume.name,
            &volume.id.simple().to_string()[..8],
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            crate::storage::store::key_suffix(id)
        );
        let source_name = match &volume.project_name {
            Some(project) => format!("{project}/{}", volume.name),
            None => volume.name.clone(),
        };
        let backup = db::backups::start(
            &self.db,
            NewBackup {
                id,
                source: Source::Volume(volume.id),
                source_name,
                source_kind: BackupKind::Volume,
                destination_id: destination.id,
                object_key: key,
                created_by: by,
                runner: self.runner.clone(),
            },
        )
        .await?;
        let (this, row, volume) = (self.clone(), backup.clone(), volume.clone());
        tokio::spawn(async move {
            let work = this.take_volume(&row, &volume, &destination);
            match this.bounded(&row, &destination, work).await {
                Ok(()) => this.verify_now(&row.id).await,
                Err((step, why)) => this.backup_failed(&row, step, &why).await,
            }
            if let Err(e) = this.apply_retention(Source::Volume(volume.id)).await {
                tracing::warn!(volume = %volume.name, error = %format!("{e:#}"), "retention not applied this time");
            }
        });
        Ok(backup)
    }

    /// Streams the volume's tar, compressed, into the destination.
    async fn take_volume(
        &self,
        backup: &Backup,
        volume: &Volume,
        destination: &Destination,
    ) -> Result<(), (&'static str, String)> {
        let store = Store::open(destination, &self.sealer).map_err(|e| ("upload", e))?;
        let mut out = store
            .create(&backup.object_key)
            .await
            .map_err(|e| ("upload", e))?;
        let name = format!("shard-volume-{}", backup.id.simple());
        let copied = async {
            let upload = |e: std::io::Error| ("upload", super::store::tidy(&e.to_string()));
            let mut tar = self
                .docker
                .read_volume(&name, &self.runner, &volume.docker_name)
                .await
                .map_err(|e| ("dump", e.to_string()))?;
            let mut gzip = GzEncoder::new(Vec::with_capacity(1 << 16), Compression::new(3));
            let mut count = TarCount::default();
            while let Some(piece) = tar.next().await {
                let piece = piece.map_err(|e| ("dump", e.to_string()))?;
                count.feed(&piece).map_err(|e| ("dump", e))?;
                gzip.write_all(&piece).map_err(upload)?;
                out.write_all(&drain(gzip.get_mut()))
                    .await
                    .map_err(upload)?;
            }
            let rest = gzip.finish().map_err(upload)?;
            out.write_all(&rest).await.map_err(upload)?;
            count.finish().map_err(|e| ("dump", e))
        }
        .await;
        let _ = self.docker.remove_named(&name).await;
        let counts = match copied {
            Ok(counts) => counts,
            Err(failure) => {
                out.abort().await;
                return Err(failure);
            }
        };
        let (bytes, sha) = out
            .finish()
            .await
            .map_err(|e| ("upload", super::store::tidy(&e.to_string())))?;
        let counts = serde_json::to_string(&counts).map_err(|e| ("dump", e.to_string()))?;
        db::backups::set_counts(&self.db, backup.id, &counts)
            .await
            .map_err(|e| ("upload", e.to_string()))?;
        db::backups::stored(&self.db, backup.id, bytes as i64, &sha)
            .await
            .map_err(|e| ("upload", e.to_string()))
    }

    /// Reads a volume backup back whole: checksum, gzip to its end, every tar header; answers
    /// the files and bytes it holds.
    pub(super) async fn read_volume_backup(
        &self,
        backup: &Backup,
        store: &Store,
    ) -> Result<BTreeMap<String, i64>, String> {
        let mut input = store.read(&backup.object_key).await?;
        let (mut hash, mut buf) = (Sha256::new(), vec![0u8; 1 << 16]);
        let mut gunzip = GzDecoder::new(Vec::with_capacity(1 << 16));
        let mut count = TarCount::default();
        let damaged = |e: std::io::Error| format!("the archive is damaged: {e}");
        loop {
            let n = input
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read {}: {e}", store.describe(&backup.object_key)))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            gunzip.write_all(&buf[..n]).map_err(damaged)?;
            count.feed(&drain(gunzip.get_mut()))?;
        }
        let rest = gunzip.finish().map_err(damaged)?;
        count.feed(&rest)?;
        let actual = hex::encode(hash.finalize());
        if backup.sha256.as_deref() != Some(actual.as_str()) {
            return Err(format!(
                "the stored file is not what was backed up (SHA-256 {actual}): it was truncated or changed"
            ));
        }
        count.finish()
    }

    /// Restores volume backup `backup` (its checksum checked first): unpacked into a new
    /// engine volume that `volume` then uses; the engine volume it used is kept as a detached
    /// volume. Answers the volume as it now is.
    pub async fn restore_volume(
        &self,
        backup: &Backup,
        volume: &Volume,
    ) -> Result<Volume, StorageError> {
        let object = self.stored_object(backup).await?;
        let fresh = Uuid::now_v7();
        let engine_name = db::volumes::docker_name(fresh);
        self.docker.create_volume(&engine_name, volume.id).await?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let feeder = tokio::spawn(async move {
            let result = async {
                let mut input = object
                    .store
                    .read(&object.key)
                    .await
                    .map_err(std::io::Error::other)?;
                let mut gunzip = GzDecoder::new(Vec::with_capacity(1 << 16));
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = input.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    gunzip.write_all(&buf[..n])?;
                    let out = drain(gunzip.get_mut());
                    if !out.is_empty() && sender.send(Ok(out.into())).await.is_err() {
                        return Ok(());
                    }
                }
                let rest = gunzip.finish()?;
                let _ = sender.send(Ok(rest.into())).await;
                Ok::<(), std::io::Error>(())
            }
            .await;
            if let Err(e) = result {
                let _ = sender.send(Err(e)).await;
            }
        });
        let name = format!("shard-volume-{}", backup.id.simple());
        let written = self
            .docker
            .write_volume(
                &name,
                &self.runner,
                &engine_name,
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            )
            .await;
        feeder.abort();
        if let Err(e) = written {
            let _ = self.docker.remove_volume(&engine_name).await;
            return Err(StorageError::Invalid {
                field: "backup",
                message: format!("the backup could not be unpacked: {e}"),
            });
        }
        Ok(db::volumes::swap_engine_volume(&self.db, volume, &engine_name).await?)
    }

    /// Destination `id`, or the first one.
    pub(super) async fn destination_or_first(
        &self,
        id: Option<Uuid>,
    ) -> Result<Destination, StorageError> {
        match id {
            Some(id) => db::backups::destination(&self.db, id)
                .await?
                .ok_or_else(|| StorageError::Invalid {
                    field: "destination_id",
                    message: "no such destination".into(),
                }),
            None => db::backups::destinations(&self.db)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    StorageError::Conflict(
                        "there is no backup destination yet; an admin adds one under System".into(),
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TarCount;

    fn archive() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, body) in [
            ("volume/a.txt", &b"hello"[..]),
            ("volume/sub/b.bin", &[7u8; 700][..]),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(body.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_tar_stream_is_counted_in_any_pieces_and_truncation_is_caught() {
        let tar = archive();
        for piece in [1, 7, 511, 512, 4096] {
            let mut count = TarCount::default();
            for chunk in tar.chunks(piece) {
                count.feed(chunk).unwrap();
            }
            let counts = count.finish().unwrap();
            assert_eq!(counts["files"], 2);
            assert_eq!(counts["bytes"], 705);
        }
        let mut cut = TarCount::default();
        cut.feed(&tar[..512 + 100]).unwrap();
        assert!(cut.finish().unwrap_err().contains("truncated"));
        let mut damaged = tar.clone();
        damaged[10] ^= 0x55;
        assert!(TarCount::default().feed(&damaged).is_err());
    }
}
