//! The `[databases]` section: the images of one-click databases and the version each kind
//! gets when none is asked for. An image is a template; `{version}` is replaced by the
//! version. The defaults are the official images, whose environment interface shard uses
//! (`POSTGRES_PASSWORD`, `MARIADB_ROOT_PASSWORD`, ...); an installation without registry access
//! points them at images that honour the same interface.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabasesConfig {
    pub images: DatabaseImages,
    pub versions: DatabaseVersions,
    /// The memory a database's container may use, in MiB.
    pub memory_limit_mb: u32,
    /// Seconds a new or restarted database has to accept connections before it is `failed`.
    pub start_timeout_secs: u64,
    /// Seconds a backup (dump and upload) or its verification may take before it is `failed`
    /// and its container process ended; a dump that hangs never stays `running`.
    pub backup_timeout_secs: u64,
}

impl Default for DatabasesConfig {
    fn default() -> Self {
        Self {
            images: DatabaseImages::default(),
            versions: DatabaseVersions::default(),
            memory_limit_mb: 512,
            start_timeout_secs: 120,
            backup_timeout_secs: 6 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseImages {
    pub postgres: String,
    pub mysql: String,
    pub mariadb: String,
    pub redis: String,
}

impl Default for DatabaseImages {
    fn default() -> Self {
        Self {
            postgres: "postgres:{version}".into(),
            mysql: "mysql:{version}".into(),
            mariadb: "mariadb:{version}".into(),
            redis: "redis:{version}".into(),
        }
    }
}

/// The version each kind gets when the request names none. An environment variable such as
/// `SHARD_DATABASES__VERSIONS__POSTGRES=16` reads as a number; it is taken as the text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseVersions {
    #[serde(deserialize_with = "text")]
    pub postgres: String,
    #[serde(deserialize_with = "text")]
    pub mysql: String,
    #[serde(deserialize_with = "text")]
    pub mariadb: String,
    #[serde(deserialize_with = "text")]
    pub redis: String,
}

/// A version written as text or as a number.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Whole(u64),
        Decimal(f64),
    }
    Ok(match Written::deserialize(d)? {
        Written::Text(t) => t,
        Written::Whole(n) => n.to_string(),
        Written::Decimal(n) => n.to_string(),
    })
}

impl Default for DatabaseVersions {
    fn default() -> Self {
        Self {
            postgres: "17".into(),
            mysql: "8.4".into(),
            mariadb: "11".into(),
            redis: "7".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseVersions;

    #[test]
    fn a_version_may_be_written_as_a_number() {
        let v: DatabaseVersions =
            serde_json::from_str(r#"{"postgres": 16, "mysql": 8.4, "redis": "7.2"}"#).unwrap();
        assert_eq!((v.postgres.as_str(), v.mysql.as_str()), ("16", "8.4"));
        assert_eq!((v.redis.as_str(), v.mariadb.as_str()), ("7.2", "11"));
    }
}
