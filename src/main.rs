//! The `shard` binary: parse the command line, load config, start tracing, dispatch.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use shard::cli::{Cli, Command, ConfigCommand, UserCommand};
use shard::config::{self, Config};
use shard::{app, auth, db, setup, telemetry, validate};

fn main() -> ExitCode {
    // Before any thread: how glibc's malloc keeps memory (see the crate).
    shard_malloc::tune();
    let cli = Cli::parse();
    if let Command::Client(command) = cli.command {
        return shard::client::run(command, cli.global.json);
    }
    match &cli.command {
        Command::Install {
            public_url,
            listen,
            root,
            no_start,
        } => {
            let options = shard::install::Install {
                root: root.clone(),
                public_url: public_url.clone(),
                listen: *listen,
                no_start: *no_start,
            };
            return report(shard::install::install(&options).map(|done| println!("{done}")));
        }
        Command::Uninstall { root, no_start } => {
            return report(
                shard::install::uninstall(root, *no_start).map(|done| println!("{done}")),
            );
        }
        _ => {}
    }
    if let Command::Restore {
        archive,
        identity,
        database_url,
    } = &cli.command
    {
        let Some(data_dir) = cli.global.data_dir.clone() else {
            eprintln!("shard: restore needs --data-dir DIR (a new, empty data dir)");
            return ExitCode::from(2);
        };
        return report(restore(
            archive,
            &data_dir,
            identity.as_deref(),
            database_url.clone(),
        ));
    }
    if let Command::Config(ConfigCommand::Init { path }) = &cli.command {
        return report(config_init(path.clone().or(cli.global.config.clone())));
    }
    let mut config = match Config::load(&cli.overrides()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("shard: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config(ConfigCommand::Show) = &cli.command {
        print!("{}", config.to_redacted_toml());
        return ExitCode::SUCCESS;
    }
    if let Command::Doctor = &cli.command {
        return doctor(&config, cli.global.json);
    }
    if let Command::Backup { out, recipient } = &cli.command {
        return report(backup(&config, out, recipient));
    }
    if let Command::Plan { dir, dockerfile } = &cli.command {
        return plan(dir.as_deref(), *dockerfile, cli.global.json, &config);
    }
    match cli.global.log_format.as_deref() {
        Some("json") => config.log.format = config::LogFormat::Json,
        Some(_) => config.log.format = config::LogFormat::Text,
        None => {}
    }
    telemetry::init(&config.log);
    // Sockets handed over by an upgrade (or a systemd socket unit), read before any thread.
    let inherited = match &cli.command {
        Command::Serve { .. } => match app::upgrade::Inherited::from_env() {
            Ok(inherited) => inherited,
            Err(e) => return report(Err(e)),
        },
        _ => app::upgrade::Inherited::default(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(e.into())),
    };
    report(runtime.block_on(run(cli.command, config, inherited)))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    config: Config,
    inherited: app::upgrade::Inherited,
) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => {
            app::App::build_with(config, inherited)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let lock = app::DataDirLock::acquire(&config.data_dir)?;
            let db = app::open_database(&config, Some(&lock)).await?;
            db.close().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { username, admin }) => {
            user_create(config, &username, admin).await
        }
        Command::Config(_)
        | Command::Client(_)
        | Command::Plan { .. }
        | Command::Doctor
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Install { .. }
        | Command::Uninstall { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// `shard doctor [--json]`: the checks on this host, the database opened read-only and never
/// migrated. Exit 1 when a check fails.
fn doctor(config: &Config, json: bool) -> ExitCode {
    let runtime = match small_runtime() {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(e)),
    };
    let report = runtime.block_on(async {
        app::install_crypto_provider();
        let url = config.database_url();
        let (db, db_error) = match db::migrate::sqlite_file(&url) {
            Some(file) if !file.exists() => (
                None,
                Some(format!(
                    "{} does not exist (shard has not run with this data dir)",
                    file.display()
                )),
            ),
            Some(file) => {
                match db::connect(&format!("sqlite://{}?mode=ro", file.display())).await {
                    Ok(db) => (Some(db), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                }
            }
            None => match db::connect(&url).await {
                Ok(db) => (Some(db), None),
                Err(e) => (None, Some(format!("{e:#}"))),
            },
        };
        let docker = shard::docker::Engine::new(config.docker.host.as_deref(), "doctor".into());
        let host = shard::doctor::Host {
            config,
            db: db.as_ref(),
            db_error,
            docker: &docker,
            serving: false,
        };
        shard::doctor::run(&host).await
    });
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", shard::doctor::render(&report));
    }
    match report.ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// A current-thread runtime for a command that runs one task.
fn small_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The archive passphrase: `SHARD_BACKUP_PASSPHRASE`, else asked on the terminal (twice
/// when writing).
fn passphrase(confirm: bool) -> anyhow::Result<age::secrecy::SecretString> {
    if let Ok(p) = std::env::var("SHARD_BACKUP_PASSPHRASE") {
        if confirm && p.chars().count() < 8 {
            anyhow::bail!("SHARD_BACKUP_PASSPHRASE is shorter than 8 characters");
        }
        return Ok(p.into());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!(
            "set SHARD_BACKUP_PASSPHRASE (no terminal to ask on), or use an age key \
             (--recipient to back up, --identity to restore)"
        );
    }
    let first = read_secret("passphrase: ")?;
    if confirm {
        if first.chars().count() < 8 {
            anyhow::bail!("the passphrase is shorter than 8 characters");
        }
        if read_secret("passphrase again: ")? != first {
            anyhow::bail!("the passphrases differ");
        }
    }
    Ok(first.into())
}

/// Reads a line from the terminal on stdin with echo off (restored after, also on error).
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    use std::io::Write;
    let stdin = std::io::stdin();
    let before = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = before.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &before);
    eprintln!();
    read.context("cannot read the passphrase")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `shard backup --out FILE [--recipient age1…]`.
fn backup(config: &Config, out: &std::path::Path, recipients: &[String]) -> anyhow::Result<()> {
    use shard::storage::instance::{self, Out, Seal};
    let seal = match recipients.is_empty() {
        true => Seal::Passphrase(passphrase(true)?),
        false => Seal::Recipients(instance::archive::recipients(recipients)?),
    };
    let to_stdout = out == std::path::Path::new("-");
    let target = match to_stdout {
        true => Out::Stdout,
        false => Out::File(out.to_path_buf()),
    };
    let done = small_runtime()?.block_on(instance::backup(config, target, &seal))?;
    let m = &done.manifest;
    let line = format!(
        "backed up {} (schema {}, {} database, {} files, {} bytes in {:.1} s): {}",
        config.data_dir.display(),
        m.schema,
        m.database,
        m.files.len(),
        done.bytes,
        done.seconds,
        counted(m)
    );
    match to_stdout {
        true => eprintln!("{line}"),
        false => println!("{line}\nwrote {}", out.display()),
    }
    Ok(())
}

/// An archive's rows per table, in words ("2 users, 50 projects, …").
fn counted(m: &shard::storage::instance::Manifest) -> String {
    let counts: Vec<String> = m.counts.iter().map(|(t, n)| format!("{n} {t}")).collect();
    counts.join(", ")
}

/// `shard restore FILE --data-dir DIR [--identity FILE] [--database-url URL]`.
fn restore(
    archive: &std::path::Path,
    data_dir: &std::path::Path,
    identity: Option<&std::path::Path>,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    use shard::storage::instance::{self, Unseal};
    let unseal = match identity {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Unseal::Identities(instance::archive::identities(&text)?)
        }
        None => Unseal::Passphrase(passphrase(false)?),
    };
    let done = small_runtime()?.block_on(async {
        app::install_crypto_provider();
        instance::restore(archive, data_dir, unseal, database_url).await
    })?;
    let m = &done.manifest;
    println!(
        "restored a backup of {} (shard {}, schema {}) into {}: {}\n\
         start it with: shard serve --config {}\n\
         (apps whose containers are not on this machine are started from their images, or \
         rebuilt from their commits, at the first start)",
        m.created_at.format("%Y-%m-%d %H:%M UTC"),
        m.shard_version,
        m.schema,
        data_dir.display(),
        counted(m),
        done.config_file.display()
    );
    Ok(())
}

/// `shard plan [DIR] [--json] [--dockerfile]`: plans a local tree, offline.
fn plan(dir: Option<&std::path::Path>, dockerfile: bool, json: bool, config: &Config) -> ExitCode {
    let dir = dir.unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        eprintln!("shard: {} is not a directory", dir.display());
        return ExitCode::from(2);
    }
    match shard::build::plan(dir, &shard::build::Settings::default(), &config.build) {
        Ok(plan) if dockerfile => {
            print!("{}", plan.dockerfile);
            ExitCode::SUCCESS
        }
        Ok(plan) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(plan) => {
            for line in plan.log_lines() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shard: cannot plan {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn config_init(path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let path = path.unwrap_or_else(|| config::DEFAULT_CONFIG_FILE.into());
    if path.exists() {
        anyhow::bail!(
            "{} already exists; edit it or remove it first",
            path.display()
        );
    }
    std::fs::write(&path, config::EXAMPLE_TOML)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

async fn user_create(config: Config, username: &str, admin: bool) -> anyhow::Result<()> {
    let username = username.trim().to_lowercase();
    validate::username(&username).map_err(|why| anyhow::anyhow!("username: {why}"))?;
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    validate::password(&password).map_err(|why| anyhow::anyhow!("password (from stdin): {why}"))?;
    // With `shard serve` running, its lock is taken: the migrations (if any) run without a
    // snapshot, in their transactions.
    let lock = app::DataDirLock::acquire(&config.data_dir).ok();
    let db = app::open_database(&config, lock.as_ref()).await?;
    let role = if admin {
        shard::model::UserRole::Admin
    } else {
        shard::model::UserRole::Member
    };
    let hash = auth::PasswordHasher::new(1).hash(password).await?;
    match db::users::create(&db, &username, &hash, role).await {
        Ok(user) => println!("created {role} {} ({})", user.username, user.id),
        Err(e) if db::is_unique_violation(&e) => anyhow::bail!("user {username} already exists"),
        Err(e) => return Err(e.into()),
    }
    // A user exists now, so first-run setup is closed.
    setup::remove_token(&config.data_dir)?;
    db.close().await?;
    Ok(())
}
