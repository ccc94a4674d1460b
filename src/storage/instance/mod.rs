//! `shard backup` and `shard restore`: a whole installation in one encrypted archive
//! (`archive`), and a new installation from it.
//!
//! A backup holds the database (SQLite: a `VACUUM INTO` copy, consistent while `shard serve`
//! runs; Postgres: `pg_dump --format=custom`), the secret key in effect (from the config,
//! `SHARD_SECRET_KEY` or `secret.key`: without it no sealed value opens), the config file,
//! the ACME account, `certs/` (issued and uploaded certificates) and `sites/` (static sites
//! of deployments). What is derived again at start is left out: `files/` (file mounts are in
//! the database), build directories, migration snapshots, the lock, the runner id.
//!
//! A restore goes into a data dir that does not exist or is empty, and touches nothing
//! before the archive has been decrypted, unpacked into a staging directory beside it and
//! checked (checksums, schema no newer than this shard, SQLite `quick_check` or
//! `pg_restore --list`). Only then is a Postgres target (which must be empty) loaded, the
//! config rewritten for the new data dir, and the staging directory renamed into place. The
//! apps come back at the next `shard serve`: a live deployment whose container is gone is
//! started again from its image, or rebuilt from its commit where the image is gone too
//! (`deploy::recover`).

pub mod archive;
mod postgres;
mod scheduled;

use std::path::{Path, PathBuf};

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::{Context, bail};

pub use archive::{Manifest, Seal, Unseal};

use crate::config::Config;
use crate::db;

/// What `shard backup` wrote.
pub struct BackupDone {
    pub manifest: Manifest,
    pub bytes: u64,
    pub seconds: f64,
}

/// Where the archive goes: a file (written as `<file>.partial`, renamed when whole) or stdout.
pub enum Out {
    File(PathBuf),
    Stdout,
}

/// Removes a directory when dropped (a staging area, on any exit).
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes what a cut-off instance backup left in the data dir: the server's
/// `instance-backup-<id>.age` scratch files (called at start, when none runs) and the
/// `backup-<pid>` staging dirs of `shard backup` processes that no longer exist.
pub fn sweep_leftovers(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let gone = match name.strip_prefix("backup-") {
            Some(pid) => pid
                .parse::<u32>()
                .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
            None => name.starts_with("instance-backup-") && name.ends_with(".age"),
        };
        if gone {
            tracing::info!(path = %entry.path().display(), "removing a cut-off instance backup's scratch");
            let _ = std::fs::remove_dir_all(entry.path())
                .or_else(|_| std::fs::remove_file(entry.path()));
        }
    }
}

/// Writes an archive of the installation `config` describes.
pub async fn backup(config: &Config, out: Out, seal: &Seal) -> anyhow::Result<BackupDone> {
    let started = std::time::Instant::now();
    let url = config.database_url();
    let sqlite = db::migrate::sqlite_file(&url);
    if let Some(file) = &sqlite
        && !file.exists()
    {
        bail!(
            "there is no installation in {} ({} does not exist)",
            config.data_dir.display(),
            file.display()
        );
    }
    let staging = Staging(
        config
            .data_dir
            .join(format!("backup-{}", std::process::id())),
    );
    std::fs::create_dir_all(&staging.0)
        .with_context(|| format!("cannot create {}", staging.0.display()))?;
    let (database, db_file) = match &sqlite {
        Some(file) => {
            let db = db::connect(&format!("sqlite://{}?mode=ro", file.display())).await?;
            let copy = staging.0.join("shard.db");
            db::migrate::vacuum_into(&db, &copy).await?;
            db.close().await.ok();
            ("sqlite", copy)
        }
        None => {
            let dump = staging.0.join("shard.pgdump");
            postgres::dump(&url, &dump).await?;
            ("postgres", dump)
        }
    };
    // Counted on the copy, so the figures are the archive's.
    let copy_url = match &sqlite {
        Some(_) => format!("sqlite://{}", db_file.display()),
        None => url.clone(),
    };
    let db = db::connect(&copy_url).await?;
    let schema = db::migrate::schema(&db).await?;
    let counts = db::health::counts(&db).await?.into_iter().collect();
    db.close().await.ok();
    let key = secret_key_text(config)?;
    let manifest = Manifest {
        format: archive::FORMAT,
        shard_version: env!("CARGO_PKG_VERSION").to_string(),
        schema,
        created_at: chrono::Utc::now(),
        database: database.to_string(),
        counts,
        files: vec![],
    };
    let config_text = match &config.source_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let data_dir = config.data_dir.clone();
    let seal = seal.clone();
    // tar, gzip and age are blocking writers: packed on a blocking thread.
    let (manifest, bytes) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let pack = |w: &mut archive::Writer<CountingWrite<Box<dyn std::io::Write>>>| {
            w.add_file(&format!("database/{}", db_name(database)), &db_file)?;
            if let Some(key) = &key {
                w.add_bytes("secret.key", key.as_bytes())?;
            }
            if let Some(text) = &config_text {
                w.add_bytes("shard.toml", text)?;
            }
            let account = data_dir.join("acme-account.json");
            if account.exists() {
                w.add_file("acme-account.json", &account)?;
            }
            w.add_tree("certs", &data_dir.join("certs"))?;
            w.add_tree("sites", &data_dir.join("sites"))?;
            anyhow::Ok(())
        };
        match out {
            Out::Stdout => {
                let sink: Box<dyn std::io::Write> = Box::new(std::io::stdout().lock());
                let mut w = archive::Writer::new(CountingWrite::new(sink), &seal)?;
                pack(&mut w)?;
                let (mut out, manifest) = w.finish(manifest)?;
                out.flush()?;
                Ok((manifest, out.bytes))
            }
            Out::File(path) => {
                let partial = crate::storage::store::partial_file(&path);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&partial)
                    .with_context(|| format!("cannot create {}", partial.display()))?;
                let written = (|| {
                    let sink: Box<dyn std::io::Write> =
                        Box::new(std::io::BufWriter::new(file.try_clone()?));
                    let mut w = archive::Writer::new(CountingWrite::new(sink), &seal)?;
                    pack(&mut w)?;
                    let (mut out, manifest) = w.finish(manifest)?;
                    out.flush()?;
                    drop(out.inner);
                    file.sync_all()?;
                    anyhow::Ok((manifest, out.bytes))
                })();
                match written {
                    Ok(done) => {
                        std::fs::rename(&partial, &path)
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        Ok(done)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&partial);
                        Err(e)
                    }
                }
            }
        }
    })
    .await??;
    Ok(BackupDone {
        manifest,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The database entry's file name.
fn db_name(kind: &str) -> &'static str {
    match kind {
        "postgres" => "shard.pgdump",
        _ => "shard.db",
    }
}

/// The secret key in effect, as `secret.key` holds it (hex and a newline); none when shard
/// has not made one yet (it never served, so nothing is sealed).
fn secret_key_text(config: &Config) -> anyhow::Result<Option<String>> {
    let key = match &config.secret_key {
        Some(key) if !key.expose().is_empty() => crate::config::parse_secret_key(key.expose())
            .context("secret_key is not a 32-byte key")?,
        _ => {
            let path = config.data_dir.join("secret.key");
            let text = match std::fs::read_to_string(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                read => {
                    read.with_context(|| format!("cannot read the secret key {}", path.display()))?
                }
            };
            crate::config::parse_secret_key(&text)
                .with_context(|| format!("{} is not a 32-byte key", path.display()))?
        }
    };
    Ok(Some(format!("{}\n", hex::encode(key))))
}

/// A writer that counts bytes.
struct CountingWrite<W> {
    inner: W,
    bytes: u64,
}

impl<W> CountingWrite<W> {
    fn new(inner: W) -> Self {
        Self { inner, bytes: 0 }
    }
}

impl<W: std::io::Write> std::io::Write for CountingWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What `shard restore` made.
pub struct Restored {
    pub manifest: Manifest,
    pub config_file: PathBuf,
}

/// Restores `archive` into `data_dir` (absent or empty). `database_url` is the Postgres
/// database to load a Postgres archive into (it must be empty); a SQLite archive becomes
/// `<data_dir>/shard.db`.
pub async fn restore(
    archive: &Path,
    data_dir: &Path,
    unseal: Unseal,
    database_url: Option<String>,
) -> anyhow::Result<Restored> {
    let data_dir = std::path::absolute(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    match std::fs::read_dir(&data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: restore into a new data dir (nothing was changed)",
                    data_dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", data_dir.display())),
    }
    let parent = data_dir
        .parent()
        .context("the data dir has no parent directory")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = Staging(parent.join(format!(".{name}.restoring-{}", std::process::id())));
    std::fs::create_dir(&staging.0)
        .with_context(|| format!("cannot create {}", staging.0.display()))?;
    set_mode(&staging.0, 0o700)?;
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open {}", archive.display()))?;
    let into = staging.0.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        archive::unpack(std::io::BufReader::new(file), &unseal, &into)
    })
    .await??;
    let known = db::migrate::known_schema();
    if manifest.schema > known {
        bail!(
            "the archive holds a database at schema {} (shard {}), and this shard {} knows \
             schemas up to {known}: restore it with a newer shard",
            manifest.schema,
            manifest.shard_version,
            env!("CARGO_PKG_VERSION")
        );
    }
    let dump = staging.0.join("database").join(db_name(&manifest.database));
    let target_url = match (manifest.database.as_str(), database_url) {
        ("sqlite", Some(url)) if url.starts_with("postgres") => bail!(
            "this archive holds a SQLite database; restore it without --database-url \
             (moving between SQLite and Postgres is not supported)"
        ),
        ("sqlite", _) => {
            let db = db::connect(&format!("sqlite://{}", dump.display())).await?;
            let check = db::health::quick_check(&db).await;
            db.close().await.ok();
            match check {
                Ok(answer) if answer == "ok" => {}
                Ok(answer) => bail!("the archive's database fails its integrity check: {answer}"),
                Err(e) => bail!("the archive's database cannot be read: {e}"),
            }
            std::fs::rename(&dump, staging.0.join("shard.db"))?;
            None
        }
        ("postgres", Some(url)) if url.starts_with("postgres") => {
            postgres::check_dump(&dump).await?;
            postgres::check_empty(&url).await?;
            Some(url)
        }
        ("postgres", _) => bail!(
            "this archive holds a Postgres database: name an empty database to load it into \
             with --database-url (or SHARD_DATABASE_URL)"
        ),
        (other, _) => bail!("the archive holds a database of an unknown kind ({other})"),
    };
    let config_file = staging.0.join("shard.toml");
    let config_text = rewrite_config(
        std::fs::read_to_string(&config_file).ok().as_deref(),
        &data_dir,
        target_url.as_deref(),
    )?;
    std::fs::remove_file(&config_file).ok();
    std::fs::write(&config_file, config_text)?;
    set_mode(&config_file, 0o600)?;
    // Everything is checked: now the target is written.
    if let Some(url) = &target_url {
        postgres::load(url, &dump).await?;
    }
    let _ = std::fs::remove_dir_all(staging.0.join("database"));
    if data_dir.exists() {
        std::fs::remove_dir(&data_dir)
            .with_context(|| format!("cannot replace the empty {}", data_dir.display()))?;
    }
    std::fs::rename(&staging.0, &data_dir)
        .with_context(|| format!("cannot move the restored files to {}", data_dir.display()))?;
    Ok(Restored {
        manifest,
        config_file: data_dir.join("shard.toml"),
    })
}

/// The archive's config (or none) with `data_dir` set to where it was restored and
/// `database_url` to the Postgres target (removed for SQLite: the default file is used).
fn rewrite_config(
    text: Option<&str>,
    data_dir: &Path,
    url: Option<&str>,
) -> anyhow::Result<String> {
    let mut table: toml::Table = match text {
        Some(text) => text
            .parse()
            .context("the archive's config file does not parse")?,
        None => toml::Table::new(),
    };
    table.insert(
        "data_dir".into(),
        toml::Value::String(data_dir.to_string_lossy().into_owned()),
    );
    match url {
        Some(url) => table.insert("database_url".into(), toml::Value::String(url.into())),
        None => table.remove("database_url"),
    };
    let body = toml::to_string(&table).context("cannot write the config")?;
    Ok(format!(
        "# Restored by `shard restore` on {}; start with `shard serve --config <this file>`.\n{body}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ))
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_whole_archive_of_a_broken_database_is_refused_before_anything_is_written() {
        let key = age::x25519::Identity::generate();
        let seal = Seal::Recipients(vec![key.to_public()]);
        let mut w = archive::Writer::new(Vec::new(), &seal).unwrap();
        let mut garbage = b"SQLite format 3\0".to_vec();
        garbage.resize(8192, 0x5a);
        w.add_bytes("database/shard.db", &garbage).unwrap();
        let (bytes, _) = w
            .finish(Manifest {
                format: archive::FORMAT,
                shard_version: "test".into(),
                schema: 1,
                created_at: chrono::Utc::now(),
                database: "sqlite".into(),
                counts: Default::default(),
                files: vec![],
            })
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.age");
        std::fs::write(&file, bytes).unwrap();
        let target = dir.path().join("restored");
        let err = restore(&file, &target, Unseal::Identities(vec![key]), None)
            .await
            .err()
            .expect("refused");
        assert!(format!("{err:#}").contains("database"), "{err:#}");
        assert!(!target.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the archive is left");
    }

    #[test]
    fn scratch_of_cut_off_backups_is_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("backup-999999999")).unwrap();
        std::fs::create_dir(d.join(format!("backup-{}", std::process::id()))).unwrap();
        std::fs::write(d.join("instance-backup-abc.age"), b"x").unwrap();
        std::fs::write(d.join("shard.db"), b"x").unwrap();
        std::fs::create_dir(d.join("backups-here")).unwrap();
        sweep_leftovers(d);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mine = format!("backup-{}", std::process::id());
        assert_eq!(left, [mine.as_str(), "backups-here", "shard.db"]);
    }

    #[test]
    fn a_restored_config_points_at_its_new_home() {
        let old = "public_url = \"https://paas.example.com\"\ndata_dir = \"/var/lib/shard\"\n\
                   database_url = \"sqlite:///var/lib/shard/shard.db\"\n[apps]\ndomain = \"example.com\"\n";
        let new = rewrite_config(Some(old), Path::new("/srv/shard"), None).unwrap();
        let table: toml::Table = new.parse().unwrap();
        assert_eq!(table["data_dir"].as_str(), Some("/srv/shard"));
        assert!(!table.contains_key("database_url"));
        assert_eq!(table["apps"]["domain"].as_str(), Some("example.com"));
        let pg = rewrite_config(None, Path::new("/d"), Some("postgres://h/db")).unwrap();
        let table: toml::Table = pg.parse().unwrap();
        assert_eq!(table["database_url"].as_str(), Some("postgres://h/db"));
        assert!(rewrite_config(Some("not = = toml"), Path::new("/d"), None).is_err());
    }
}
