//! Backup destinations: a directory on this host or a bucket of an S3-compatible store,
//! checked (a test write with its credentials) before one is added; an S3 secret is sealed
//! to the destination's id.

use uuid::Uuid;

use super::databases::{Databases, StorageError};
use super::store::{Store, seal_secret};
use crate::db::{self, backups::Destination};
use crate::model::DestinationKind;

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
}
