//! How apps connect to a one-click database, and how its image is told its credentials: the
//! credentials sealed in its row, the URL and variables an attached project gets, the official
//! images' environment interface, and the command that says it accepts connections.

use serde::{Deserialize, Serialize};

use crate::db::databases::Database;
use crate::model::DatabaseKind;
use crate::secrets::Sealer;

/// What the app needs to connect; sealed in the row as JSON.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// The database (SQL) or index (Redis) the app uses.
    pub database: String,
    /// MySQL and MariaDB: the root password the image asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
}

/// How an attached project reaches a database.
#[derive(Clone)]
pub struct Connection {
    /// Its name on the project's network.
    pub host: String,
    pub port: u16,
    pub credentials: Credentials,
    pub url: String,
}

/// A fresh password: 32 hex characters (safe in a URL as it is).
pub(super) fn password() -> String {
    hex::encode(crate::secrets::random_bytes::<16>())
}

/// The container's name of database `db`.
pub fn container_name(db: &Database) -> String {
    // The id's random tail: its head is a timestamp, the same for databases made together.
    format!("shard-db-{}-{}", db.name, &db.id.simple().to_string()[20..])
}

/// Opens a database's credentials.
pub fn credentials(sealer: &Sealer, db: &Database) -> anyhow::Result<Credentials> {
    let plain = sealer.open(&db.credentials, db.id.as_bytes())?;
    Ok(serde_json::from_slice(&plain)?)
}

/// How an attached project reaches `db`.
pub fn connection(sealer: &Sealer, db: &Database) -> anyhow::Result<Connection> {
    let c = credentials(sealer, db)?;
    let (host, port) = (db.name.clone(), db.kind.port());
    let url = match db.kind {
        DatabaseKind::Postgres => format!(
            "postgres://{}:{}@{host}:{port}/{}",
            c.user, c.password, c.database
        ),
        DatabaseKind::Mysql | DatabaseKind::Mariadb => format!(
            "mysql://{}:{}@{host}:{port}/{}",
            c.user, c.password, c.database
        ),
        DatabaseKind::Redis => format!(
            "redis://{}:{}@{host}:{port}/{}",
            c.user, c.password, c.database
        ),
    };
    Ok(Connection {
        host,
        port,
        credentials: c,
        url,
    })
}

/// The variables an attached project gets from `db` (all secret): `DATABASE_URL` and its
/// parts for SQL, `REDIS_URL` and its parts for Redis.
pub fn connection_env(sealer: &Sealer, db: &Database) -> anyhow::Result<Vec<(String, String)>> {
    let c = connection(sealer, db)?;
    let prefix = if db.kind.is_sql() {
        "DATABASE"
    } else {
        "REDIS"
    };
    let mut vars = vec![
        (format!("{prefix}_URL"), c.url),
        (format!("{prefix}_HOST"), c.host),
        (format!("{prefix}_PORT"), c.port.to_string()),
        (format!("{prefix}_USER"), c.credentials.user),
        (format!("{prefix}_PASSWORD"), c.credentials.password),
    ];
    if db.kind.is_sql() {
        vars.push(("DATABASE_NAME".into(), c.credentials.database));
    }
    Ok(vars)
}

/// The image's environment and command for `db` (the official images' interface).
pub(super) fn interface(db: &Database, c: &Credentials) -> (Vec<String>, Option<Vec<String>>) {
    match db.kind {
        DatabaseKind::Postgres => (
            vec![
                format!("POSTGRES_USER={}", c.user),
                format!("POSTGRES_PASSWORD={}", c.password),
                format!("POSTGRES_DB={}", c.database),
                format!("PGDATA={}/pgdata", db.kind.data_dir()),
            ],
            None,
        ),
        DatabaseKind::Mysql | DatabaseKind::Mariadb => {
            let p = if db.kind == DatabaseKind::Mysql {
                "MYSQL"
            } else {
                "MARIADB"
            };
            let root = c.root_password.clone().unwrap_or_default();
            (
                vec![
                    format!("{p}_ROOT_PASSWORD={root}"),
                    format!("{p}_DATABASE={}", c.database),
                    format!("{p}_USER={}", c.user),
                    format!("{p}_PASSWORD={}", c.password),
                ],
                None,
            )
        }
        DatabaseKind::Redis => (
            Vec::new(),
            Some(vec![
                "redis-server".into(),
                "--requirepass".into(),
                c.password.clone(),
                "--appendonly".into(),
                "yes".into(),
                "--dir".into(),
                db.kind.data_dir().into(),
            ]),
        ),
    }
}

/// The command that succeeds once a database of `kind` accepts connections, run in its
/// container.
pub(super) fn ready_command(kind: DatabaseKind, c: &Credentials) -> Vec<String> {
    let words: Vec<&str> = match kind {
        // Over TCP: during first-start initialisation the image's server listens on its socket only.
        DatabaseKind::Postgres => vec!["pg_isready", "-q", "-h", "127.0.0.1", "-U", &c.user],
        DatabaseKind::Mysql => vec!["mysqladmin", "ping", "-h", "127.0.0.1", "--silent"],
        DatabaseKind::Mariadb => vec!["mariadb-admin", "ping", "-h", "127.0.0.1", "--silent"],
        DatabaseKind::Redis => vec!["redis-cli", "--no-auth-warning", "-a", &c.password, "ping"],
    };
    words.into_iter().map(str::to_string).collect()
}
