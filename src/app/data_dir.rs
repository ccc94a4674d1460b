//! The data dir and what lives in it: the lock that allows one `shard serve` per dir, the
//! database (opened and migrated), the keys (from config or `secret.key`, checked against the
//! stored env vars), and the first-run setup token.

use anyhow::Context;

use crate::config::Config;
use crate::db::{self, Db};
use crate::secrets::{self, Sealer};
use crate::setup;

/// Opens the database named by the config and applies pending migrations. With the data dir's
/// `lock` held, a SQLite database is snapshotted first and put back if a migration fails
/// (`db::migrate`); without it another process may have the file open, so it is not.
pub async fn open_database(config: &Config, lock: Option<&DataDirLock>) -> anyhow::Result<Db> {
    Ok(open_database_retiring(config, lock).await?.0)
}

/// [`open_database`], with the handle that retires its pool's connections
/// (`db::Retirement`: a server that stops takes its runtimes' connections with it).
pub async fn open_database_retiring(
    config: &Config,
    lock: Option<&DataDirLock>,
) -> anyhow::Result<(Db, db::Retirement)> {
    install_crypto_provider();
    create_private_dir(&config.data_dir)?;
    if config
        .database_url
        .as_ref()
        .is_none_or(|u| u.expose().is_empty())
    {
        create_private_file(&config.data_dir.join("shard.db"))?;
    }
    let url = config.database_url();
    let (db, retirement) = db::connect_retiring(&url).await?;
    let snapshots = lock.map(|_| config.data_dir.join("snapshots"));
    Ok((
        db::migrate(db, &url, snapshots.as_deref()).await?,
        retirement,
    ))
}

/// sqlx (ring) and reqwest/gix (aws-lc-rs) both bring a rustls backend; with two compiled in,
/// rustls cannot pick one by itself, so shard names one before any TLS is used.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Creates the data dir readable by its owner only (it holds keys and the database).
pub(super) fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates the SQLite file readable by its owner only before SQLite opens it (its WAL and
/// shared-memory files take the same mode), and tightens an existing one.
fn create_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(())
}

/// An exclusive lock on `<data_dir>/shard.lock`, released when the process ends (even by
/// SIGKILL). A second `shard serve` on the same data dir would run every job twice and
/// break SQLite's one-writer assumption of the queue; it exits at once instead. The file holds
/// the serving process's pid (for `kill -USR2 $(cat shard.lock)`); after an upgrade, the new
/// process's (written once it serves, which is how the old one knows).
pub struct DataDirLock {
    file: std::fs::File,
    /// Cancelled once no earlier process holds the data dir (at once unless an upgrade
    /// started this process).
    predecessor_gone: tokio_util::sync::CancellationToken,
}

impl DataDirLock {
    /// Takes the lock (making the data dir first when it does not exist yet).
    pub fn acquire(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        use rustix::fs::{FlockOperation, flock};
        use std::os::unix::fs::OpenOptionsExt;
        create_private_dir(data_dir)?;
        let path = data_dir.join("shard.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let predecessor_gone = tokio_util::sync::CancellationToken::new();
                predecessor_gone.cancel();
                Ok(Self {
                    file,
                    predecessor_gone,
                })
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => anyhow::bail!(
                "the data dir {} is in use by another shard process; stop it first or choose another --data-dir",
                data_dir.display()
            ),
            Err(e) => {
                Err(anyhow::Error::from(e)).context(format!("cannot lock {}", path.display()))
            }
        }
    }

    /// For a process started by an upgrade: the old process holds the lock until it exits, so
    /// a thread waits for it in the background (meanwhile the old process's lock still keeps a
    /// third `shard serve` away).
    pub(super) fn after_predecessor(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let path = data_dir.join("shard.lock");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let waiting = file.try_clone()?;
        let predecessor_gone = tokio_util::sync::CancellationToken::new();
        let gone = predecessor_gone.clone();
        std::thread::Builder::new()
            .name("data-dir-lock".into())
            .spawn(move || {
                use rustix::fs::{FlockOperation, flock};
                match flock(&waiting, FlockOperation::LockExclusive) {
                    Ok(()) => tracing::debug!("the previous process let go of the data dir"),
                    Err(e) => tracing::warn!(error = %e, "cannot lock the data dir"),
                }
                gone.cancel();
            })?;
        Ok(Self {
            file,
            predecessor_gone,
        })
    }

    /// Cancelled once the process this one took over from has exited.
    pub fn predecessor_gone(&self) -> tokio_util::sync::CancellationToken {
        self.predecessor_gone.clone()
    }

    /// Writes this process's pid into the lock file (for `kill -USR2`).
    pub fn record_pid(&self) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let mut file = &self.file;
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())
    }
}

/// Refuses to start when the stored env vars were sealed with another key (a changed
/// `SHARD_SECRET_KEY` or a replaced `secret.key`): otherwise every deploy and env read would
/// fail later, far from the cause.
async fn check_secret_key(db: &db::Db, sealer: &Sealer, config: &Config) -> anyhow::Result<()> {
    let sample = db::env_vars::any(db)
        .await
        .context("cannot read env vars to check the secret key")?;
    if let Some(var) = sample
        && sealer.open(&var.value_sealed, var.id.as_bytes()).is_err()
    {
        anyhow::bail!(
            "the secret key cannot open the env vars stored in this database: they were sealed \
             with another key. Start shard with the key it used before (SHARD_SECRET_KEY, or the \
             file {}); the key is never stored in the database",
            config.data_dir.join("secret.key").display()
        );
    }
    Ok(())
}

/// The keys derived from the secret key.
pub(super) struct Keys {
    pub secret_key: [u8; 32],
    /// Signs access tokens. Derived, not stored: instances that share the secret key accept
    /// each other's access tokens. (A `jwt.key` file from earlier versions is no longer read.)
    pub jwt_key: [u8; 32],
    pub sealer: std::sync::Arc<Sealer>,
}

impl Keys {
    /// The secret key from config, else from `secret.key` (made at first start), checked
    /// against what the database holds.
    pub(super) async fn load(config: &Config, db: &Db) -> anyhow::Result<Keys> {
        let secret_key = match &config.secret_key {
            Some(key) if !key.expose().is_empty() => crate::config::parse_secret_key(key.expose())
                .context("secret_key is not a 32-byte key")?,
            _ => secrets::load_or_create_key_file(&config.data_dir.join("secret.key"))?,
        };
        let sealer = std::sync::Arc::new(Sealer::new(&secret_key));
        check_secret_key(db, &sealer, config).await?;
        Ok(Keys {
            jwt_key: secrets::derive_key(&secret_key, "access tokens v1"),
            secret_key,
            sealer,
        })
    }
}

/// With no users yet, makes sure a setup token exists and logs the URL that uses it;
/// once a user exists, removes any stale token.
pub(super) async fn announce_setup(config: &Config, db: &Db, port: u16) -> anyhow::Result<()> {
    if db::users::count(db).await? > 0 {
        return setup::remove_token(&config.data_dir);
    }
    let token = setup::ensure_token(&config.data_dir)?;
    let base = match &config.public_url {
        Some(_) => config.public_url(),
        None => format!("http://{}:{}", config.listen.ip(), port),
    };
    tracing::warn!(
        "no users yet: finish setup at {base}/setup?token={token} (token also in {})",
        setup::token_path(&config.data_dir).display()
    );
    Ok(())
}
