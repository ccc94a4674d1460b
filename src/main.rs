//! The `shard` binary: parse the command line, load config, start tracing, dispatch.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use shard::cli::{Cli, Command, ConfigCommand, UserCommand};
use shard::config::{self, Config};
use shard::{app, auth, db, setup, telemetry, validate};

fn main() -> ExitCode {
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
        | Command::Install { .. }
        | Command::Uninstall { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// `shard doctor [--json]`: the checks on this host, the database opened read-only and never
/// migrated. Exit 1 when a check fails.
fn doctor(config: &Config, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(Err(e.into())),
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
