//! Where backups are kept: a directory on this host, or a bucket of an S3-compatible store
//! (AWS S3, MinIO, R2, …) through `object_store`. Both take a backup as a stream and hash it
//! on the way; neither ever shows a backup that is not whole:
//! - a local file is written as `<key>.partial`, synced, then renamed into place;
//! - an S3 object is a multipart upload (5 MiB parts, two in flight: a bounded ~15 MiB) that
//!   is completed only at the end; one cut off is aborted, or, after a crash, never
//!   completed, so no object appears (the bucket's lifecycle rule for incomplete uploads
//!   clears the parts).
//!
//! A destination's S3 secret is sealed at rest (bound to the destination's id) and opened
//! only to build the client.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter as S3Writer;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::db::backups::Destination;
use crate::model::DestinationKind;
use crate::secrets::Sealer;

/// S3 multipart part size (S3's smallest) and parts uploaded at once.
const PART_BYTES: usize = 5 << 20;
const PARTS_IN_FLIGHT: usize = 2;

/// An opened destination.
#[derive(Clone)]
pub(super) enum Store {
    Local(PathBuf),
    S3 {
        client: Arc<dyn ObjectStore>,
        prefix: String,
    },
}

/// One stored backup: its destination and key.
#[derive(Clone)]
pub(super) struct Object {
    pub store: Store,
    pub key: String,
}

/// A backup being written: hashed and counted as it passes; [`Upload::finish`] makes it
/// appear, [`Upload::abort`] (or a crash) leaves nothing that looks whole.
pub(super) struct Upload {
    sink: Sink,
    hash: Sha256,
    bytes: u64,
}

enum Sink {
    Local {
        file: tokio::io::BufWriter<tokio::fs::File>,
        partial: PathBuf,
        path: PathBuf,
    },
    S3(S3Writer),
}

/// The part of a backup's key that tells it from others of the same source in the same
/// second: the random tail of its UUIDv7 (the head is the timestamp, shared within a minute).
pub(super) fn key_suffix(id: uuid::Uuid) -> String {
    id.simple().to_string()[20..].to_string()
}

/// The part of a local backup being written.
pub(super) fn partial_file(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The S3 secret of destination `id`, sealed.
pub(super) fn seal_secret(sealer: &Sealer, id: uuid::Uuid, secret: &str) -> Vec<u8> {
    sealer.seal(secret.as_bytes(), id.as_bytes())
}

impl Store {
    /// Opens `destination` (no request is made).
    pub(super) fn open(destination: &Destination, sealer: &Sealer) -> Result<Store, String> {
        match destination.kind {
            DestinationKind::Local => {
                let dir = destination
                    .path
                    .as_deref()
                    .ok_or("the local destination has no path")?;
                Ok(Store::Local(PathBuf::from(dir)))
            }
            DestinationKind::S3 => {
                let secret = match &destination.secret_key {
                    Some(sealed) => {
                        let open = sealer
                            .open(sealed, destination.id.as_bytes())
                            .map_err(|_| "the destination's secret key does not open with this instance's key")?;
                        Some(String::from_utf8(open).map_err(|e| e.to_string())?)
                    }
                    None => None,
                };
                let client = s3_client(
                    destination.endpoint.as_deref(),
                    destination.bucket.as_deref().unwrap_or_default(),
                    destination.region.as_deref(),
                    destination.access_key.as_deref(),
                    secret.as_deref(),
                )?;
                Ok(Store::S3 {
                    client,
                    prefix: destination.prefix.clone().unwrap_or_default(),
                })
            }
        }
    }

    fn object(prefix: &str, key: &str) -> ObjectPath {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{prefix}/{key}"))
        }
    }

    /// Where `key` is, for messages.
    pub(super) fn describe(&self, key: &str) -> String {
        match self {
            Store::Local(dir) => dir.join(key).display().to_string(),
            Store::S3 { prefix, .. } => Self::object(prefix, key).to_string(),
        }
    }

    /// Starts writing backup `key`.
    pub(super) async fn create(&self, key: &str) -> Result<Upload, String> {
        let sink = match self {
            Store::Local(dir) => {
                let path = dir.join(key);
                let partial = partial_file(&path);
                let cannot = |e: std::io::Error| format!("cannot write {}: {e}", partial.display());
                if let Some(parent) = partial.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(cannot)?;
                }
                let file = tokio::fs::File::create(&partial).await.map_err(cannot)?;
                Sink::Local {
                    file: tokio::io::BufWriter::with_capacity(1 << 20, file),
                    partial,
                    path,
                }
            }
            Store::S3 { client, prefix } => Sink::S3(
                S3Writer::with_capacity(client.clone(), Self::object(prefix, key), PART_BYTES)
                    .with_max_concurrency(PARTS_IN_FLIGHT),
            ),
        };
        Ok(Upload {
            sink,
            hash: Sha256::new(),
            bytes: 0,
        })
    }

    /// Reads backup `key` as a stream.
    pub(super) async fn read(
        &self,
        key: &str,
    ) -> Result<Box<dyn AsyncRead + Send + Unpin>, String> {
        match self {
            Store::Local(dir) => {
                let path = dir.join(key);
                let file = tokio::fs::File::open(&path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Box::new(tokio::io::BufReader::with_capacity(1 << 20, file)))
            }
            Store::S3 { client, prefix } => {
                use futures_util::TryStreamExt;
                let object = Self::object(prefix, key);
                let got = client
                    .get(&object)
                    .await
                    .map_err(|e| format!("cannot read {object}: {}", tidy(&e.to_string())))?;
                let stream = got.into_stream().map_err(std::io::Error::other);
                Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
            }
        }
    }

    /// The SHA-256 (hex) of backup `key`, read back in full.
    pub(super) async fn sha256(&self, key: &str) -> Result<String, String> {
        use tokio::io::AsyncReadExt;
        let mut input = self.read(key).await?;
        let (mut hash, mut buf) = (Sha256::new(), vec![0u8; 1 << 20]);
        loop {
            match input.read(&mut buf).await {
                Ok(0) => return Ok(hex::encode(hash.finalize())),
                Ok(n) => hash.update(&buf[..n]),
                Err(e) => return Err(format!("cannot read {}: {e}", self.describe(key))),
            }
        }
    }

    /// Removes backup `key`; one already gone is not an error.
    pub(super) async fn remove(&self, key: &str) -> Result<(), String> {
        match self {
            Store::Local(dir) => match tokio::fs::remove_file(dir.join(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {e}", dir.join(key).display()))
                }
                _ => Ok(()),
            },
            Store::S3 { client, prefix } => match client.delete(&Self::object(prefix, key)).await {
                Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => {
                    Err(format!("cannot remove {key}: {}", tidy(&e.to_string())))
                }
                _ => Ok(()),
            },
        }
    }

    /// What a cut-off write of `key` left behind: a local partial file. (An S3 upload that
    /// was never completed shows no object.)
    pub(super) async fn remove_partial(&self, key: &str) {
        if let Store::Local(dir) = self {
            let _ = tokio::fs::remove_file(partial_file(&dir.join(key))).await;
        }
    }

    /// Writes and removes a small object: the destination takes writes with its credentials.
    pub(super) async fn probe(&self) -> Result<(), String> {
        let key = format!(".shard-probe-{}", uuid::Uuid::now_v7().simple());
        let mut upload = self.create(&key).await?;
        upload
            .write_all(b"shard")
            .await
            .map_err(|e| tidy(&e.to_string()))?;
        upload.finish().await.map_err(|e| tidy(&e.to_string()))?;
        self.remove(&key).await
    }
}

/// An S3 failure in a line: the HTTP status and the store's error code and message when its
/// XML answer says them (`404 Not Found: NoSuchBucket (The specified bucket does not exist)`),
/// else the client's words, cut to 500 characters.
pub(super) fn tidy(text: &str) -> String {
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let len = text[start..].find(close)?;
        Some(text[start..start + len].to_string())
    };
    if let (Some(code), Some(message)) = (
        between("<Code>", "</Code>"),
        between("<Message>", "</Message>"),
    ) {
        let status = between("status code: ", ": <").unwrap_or_default();
        return format!("the store answered {status}: {code} ({message})")
            .replace("answered : ", "answered ");
    }
    text.chars().take(500).collect()
}

/// A client for an S3-compatible bucket: path-style requests, plain HTTP allowed only for an
/// `http://` endpoint, a few retries inside a minute.
fn s3_client(
    endpoint: Option<&str>,
    bucket: &str,
    region: Option<&str>,
    access_key: Option<&str>,
    secret_key: Option<&str>,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region.unwrap_or("us-east-1"))
        .with_retry(object_store::RetryConfig {
            backoff: Default::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
        })
        .with_client_options(
            object_store::ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(300)),
        );
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let (Some(access), Some(secret)) = (access_key, secret_key) {
        builder = builder
            .with_access_key_id(access)
            .with_secret_access_key(secret);
    }
    builder
        .build()
        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        .map_err(|e| e.to_string())
}

impl Upload {
    /// Makes the backup appear whole; its size and SHA-256 (hex). On failure nothing that
    /// looks whole is left.
    pub(super) async fn finish(mut self) -> std::io::Result<(u64, String)> {
        let done = match &mut self.sink {
            Sink::Local {
                file,
                partial,
                path,
            } => {
                let synced = async {
                    file.flush().await?;
                    file.get_ref().sync_all().await?;
                    tokio::fs::rename(&*partial, &*path).await
                };
                let done = synced.await;
                if done.is_err() {
                    let _ = tokio::fs::remove_file(&*partial).await;
                }
                done
            }
            Sink::S3(writer) => writer.shutdown().await,
        };
        done.map(|()| (self.bytes, hex::encode(self.hash.finalize())))
    }

    /// Gives up: a local partial file is removed, an S3 multipart upload aborted.
    pub(super) async fn abort(mut self) {
        match &mut self.sink {
            Sink::Local { partial, .. } => {
                let _ = tokio::fs::remove_file(&*partial).await;
            }
            Sink::S3(writer) => {
                if let Err(e) = writer.abort().await {
                    tracing::warn!(error = %e, "cannot abort an S3 upload; its parts stay until the bucket's lifecycle rule");
                }
            }
        }
    }
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let written = match &mut this.sink {
            Sink::Local { file, .. } => Pin::new(file).poll_write(cx, buf),
            Sink::S3(writer) => Pin::new(writer).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = &written {
            this.hash.update(&buf[..*n]);
            this.bytes += *n as u64;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.sink {
            Sink::Local { file, .. } => Pin::new(file).poll_flush(cx),
            Sink::S3(writer) => Pin::new(writer).poll_flush(cx),
        }
    }

    /// Shutting down is [`Upload::finish`]'s; here it only flushes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_errors_are_told_in_a_line() {
        let said = "Object at location k not found: Error performing PUT http://h/b/k in 5ms - \
            Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n\
            <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>\
            <RequestId>x</RequestId></Error>";
        assert_eq!(
            super::tidy(said),
            "the store answered 404 Not Found: NoSuchBucket (The specified bucket does not exist)"
        );
        assert_eq!(super::tidy("connection refused"), "connection refused");
        assert_eq!(super::tidy(&"x".repeat(900)).len(), 500);
    }
}
