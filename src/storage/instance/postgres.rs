//! shard's own Postgres database in an instance backup: `pg_dump --format=custom` out,
//! `pg_restore` in, run from the host's PATH (`postgresql-client`) with the password given
//! in `PGPASSWORD`, never on the command line. No shell: each argument is its own.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, Statement};

/// `url` without its password, and the password.
fn split_password(url: &str) -> anyhow::Result<(String, Option<String>)> {
    let mut parsed = url::Url::parse(url).context("the database URL does not parse")?;
    let password = parsed.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = parsed.set_password(None);
    Ok((parsed.to_string(), password))
}

/// Runs `program args…` against `url` and returns its stdout, or its stderr as the error.
async fn run(program: &'static str, url: &str, args: Vec<String>) -> anyhow::Result<Vec<u8>> {
    let (url, password) = split_password(url)?;
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(program);
        command
            .args(&args)
            .arg(format!("--dbname={url}"))
            .stdin(Stdio::null());
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        let output = command.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "{program} is not installed (shard runs it for a Postgres database; \
                 install postgresql-client of the server's major version)"
            ),
            _ => anyhow::anyhow!("cannot run {program}: {e}"),
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.trim().chars().take(2000).collect();
            bail!("{program} failed ({}): {tail}", output.status);
        }
        Ok(output.stdout)
    })
    .await?
}

/// Dumps the database at `url` into `file` (custom format: compressed, restorable table by
/// table, one consistent snapshot).
pub(super) async fn dump(url: &str, file: &Path) -> anyhow::Result<()> {
    run(
        "pg_dump",
        url,
        vec![
            "--format=custom".into(),
            "--no-owner".into(),
            "--no-privileges".into(),
            format!("--file={}", file.display()),
        ],
    )
    .await
    .map(drop)
}

/// Reads the dump's table of contents (a damaged or foreign file is refused here).
pub(super) async fn check_dump(file: &Path) -> anyhow::Result<()> {
    let file = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("pg_restore")
            .arg("--list")
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                anyhow::anyhow!("cannot run pg_restore (install postgresql-client): {e}")
            })?;
        if !output.status.success() {
            bail!(
                "the archive's Postgres dump cannot be read: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    })
    .await?
}

/// Refuses a target database that already has tables.
pub(super) async fn check_empty(url: &str) -> anyhow::Result<()> {
    let db = crate::db::connect(url)
        .await
        .context("cannot connect to the target database")?;
    let row = db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'",
        ))
        .await?;
    db.close().await.ok();
    let tables = match row {
        Some(row) => row.try_get::<i64>("", "n")?,
        None => 0,
    };
    if tables > 0 {
        bail!(
            "the target database already has {tables} tables: restore into an empty database \
             (nothing was changed)"
        );
    }
    Ok(())
}

/// Loads the dump into `url` in one transaction (all or nothing).
pub(super) async fn load(url: &str, file: &Path) -> anyhow::Result<()> {
    run(
        "pg_restore",
        url,
        vec![
            "--no-owner".into(),
            "--no-privileges".into(),
            "--single-transaction".into(),
            "--exit-on-error".into(),
            file.display().to_string(),
        ],
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_leaves_the_url() {
        let (url, password) =
            split_password("postgres://shard:p%40ss@127.0.0.1:5432/shard?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://shard@127.0.0.1:5432/shard?sslmode=disable");
        assert_eq!(password.as_deref(), Some("p@ss"));
        let (_, none) = split_password("postgres://h/db").unwrap();
        assert_eq!(none, None);
    }
}
