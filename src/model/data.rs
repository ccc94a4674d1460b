//! Managed data services: the kinds of one-click database and their states.

use super::text::text_enum;

text_enum! {
    /// What a one-click database runs.
    pub enum DatabaseKind ("database kind") {
        Postgres = "postgres",
        Mysql = "mysql",
        Mariadb = "mariadb",
        Redis = "redis",
    }
}

impl DatabaseKind {
    /// Whether it speaks SQL (its attachment is `DATABASE_URL`, else `REDIS_URL`).
    pub fn is_sql(self) -> bool {
        !matches!(self, Self::Redis)
    }

    /// The port it listens on inside its container.
    pub fn port(self) -> u16 {
        match self {
            Self::Postgres => 5432,
            Self::Mysql | Self::Mariadb => 3306,
            Self::Redis => 6379,
        }
    }

    /// Where its data lives in its container (its volume is mounted there).
    pub fn data_dir(self) -> &'static str {
        match self {
            Self::Postgres => "/var/lib/postgresql/data",
            Self::Mysql | Self::Mariadb => "/var/lib/mysql",
            Self::Redis => "/data",
        }
    }
}

text_enum! {
    /// Where a one-click database is in its life.
    pub enum DatabaseState ("database state") {
        /// Created; waiting until it accepts connections.
        Starting = "starting",
        Running = "running",
        /// Stopped by its owner.
        Stopped = "stopped",
        /// A backup is being restored into it (other connections were ended).
        Restoring = "restoring",
        /// It did not come up (the message says why); start it again to retry.
        Failed = "failed",
    }
}

text_enum! {
    /// What a backup is of: a one-click database of a kind, or a project's volume.
    pub enum BackupKind ("backup kind") {
        Postgres = "postgres",
        Mysql = "mysql",
        Mariadb = "mariadb",
        Redis = "redis",
        /// A tar of a volume's files, gzip-compressed.
        Volume = "volume",
        /// The whole installation (`shard backup`), age-encrypted.
        Instance = "instance",
    }
}

impl BackupKind {
    /// The database kind it is of; none for a volume.
    pub fn database(self) -> Option<DatabaseKind> {
        match self {
            Self::Postgres => Some(DatabaseKind::Postgres),
            Self::Mysql => Some(DatabaseKind::Mysql),
            Self::Mariadb => Some(DatabaseKind::Mariadb),
            Self::Redis => Some(DatabaseKind::Redis),
            Self::Volume | Self::Instance => None,
        }
    }
}

impl From<DatabaseKind> for BackupKind {
    fn from(kind: DatabaseKind) -> Self {
        match kind {
            DatabaseKind::Postgres => Self::Postgres,
            DatabaseKind::Mysql => Self::Mysql,
            DatabaseKind::Mariadb => Self::Mariadb,
            DatabaseKind::Redis => Self::Redis,
        }
    }
}

text_enum! {
    /// Where a backup is: taken and stored (`succeeded`), and `verified` only once a restore of
    /// it into a throwaway database was checked. A failure names its step.
    pub enum BackupState ("backup state") {
        Running = "running",
        Succeeded = "succeeded",
        Verified = "verified",
        Failed = "failed",
    }
}

text_enum! {
    /// Where backups go.
    pub enum DestinationKind ("backup destination kind") {
        /// A directory on this host.
        Local = "local",
        /// An S3-compatible object store.
        S3 = "s3",
    }
}
