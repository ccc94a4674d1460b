//! The command line (clap): the server's `serve`, `migrate`, `doctor`, `install`,
//! `uninstall`, `backup`, `restore`, `user create`, `config init|show`,
//! the offline `plan`,
//! and the client's `login`, `projects`, `deploy`, `logs`, `env`, `rollback`, `open`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

#[derive(Debug, Parser)]
#[command(name = "shard", version, about = "A self-hosted PaaS in one binary")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (TOML); default ./shard.toml when present.
    #[arg(long, global = true, env = "SHARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (database, keys); default ./shard-data.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Client commands: print JSON (one document, or one event per line when following).
    #[arg(long, global = true)]
    pub json: bool,
    /// Server log lines: `text` (compact; coloured on a terminal) or `json` (one object per
    /// line, for collectors); overrides `log.format`.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything: dashboard, API, job workers.
    Serve {
        /// Address to listen on, such as 127.0.0.1:8080 or 0.0.0.0:80.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check this host: Docker, ports, DNS, port 80, disk, clock, the database, backups,
    /// certificates and unwise settings; each problem with what to do. Exit 1 when a check
    /// fails (`--json` for the report as the API gives it).
    Doctor,
    /// Install shard as a systemd service: the binary in /usr/local/bin, the data dir
    /// /var/lib/shard, /etc/shard/shard.toml and the unit; start it and print the setup URL.
    Install {
        /// The address users open, such as https://shard.example.com.
        #[arg(long, value_name = "URL")]
        public_url: String,
        /// Where shard listens (0.0.0.0:80 to serve apps on port 80).
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
        listen: SocketAddr,
        /// Put every path under this directory (for packaging).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Write the files only; do not run systemctl.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop and remove the systemd unit; the data dir and the config stay.
    Uninstall {
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// Remove the unit file only; do not run systemctl.
        #[arg(long)]
        no_start: bool,
    },
    /// Write the whole installation (database, key, config, certificates, static sites) to
    /// one archive, encrypted with SHARD_BACKUP_PASSPHRASE (or a prompt) or to age recipients.
    Backup {
        /// The archive to write (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Encrypt to this age public key (`age1…`) instead of a passphrase; repeatable.
        #[arg(long, value_name = "AGE1…")]
        recipient: Vec<String>,
    },
    /// Make a new installation in --data-dir (absent or empty) from a `shard backup` archive.
    /// The archive is decrypted and checked before anything is written.
    Restore {
        /// The archive.
        archive: PathBuf,
        /// An age identity file, for an archive encrypted to a recipient.
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// For an archive of a Postgres installation: the empty database to load it into.
        #[arg(
            long,
            value_name = "URL",
            env = "SHARD_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: Option<String>,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Write or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The build plan of a local directory, offline: what shard would build for it without a
    /// Dockerfile, and why (`--json` for the plan as the API gives it). Exit 1 when nothing
    /// can be planned. Uses the `[build]` images of `--config` (./shard.toml here is the
    /// repository's own settings, not shard's configuration).
    Plan {
        /// The repository (default: the current directory).
        dir: Option<PathBuf>,
        /// Print only the Dockerfile, to commit as the repository's own (eject).
        #[arg(long)]
        dockerfile: bool,
    },
    #[command(flatten)]
    Client(ClientCommand),
}

/// The client: talks to a shard server over its API with the token `login` stored.
/// Exit codes: 0 done; 1 the deploy ended failed or cancelled; 2 bad usage; 3 the server
/// refused; 4 not logged in, or the server unreachable or failing.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Sign in to a shard server; stores its URL and an API token in your config directory.
    Login {
        /// The server, such as https://shard.example.com.
        url: String,
        /// Use this API token instead of approving a code on the dashboard (`-`: read stdin).
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
    /// List the projects you can see.
    Projects,
    /// Deploy a project's branch now.
    Deploy {
        /// Project name, slug or id.
        project: String,
        /// Stream the build log until the deploy ends; exit 0 when live, 1 when it failed.
        #[arg(long)]
        follow: bool,
    },
    /// Print a project's runtime log (what the running app writes).
    Logs {
        project: String,
        /// Keep streaming until interrupted.
        #[arg(long)]
        follow: bool,
    },
    /// A project's environment variables.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Start an earlier deployment's image again (default: the one before the live one).
    Rollback {
        project: String,
        /// The deployment id to go back to.
        deployment: Option<String>,
        #[arg(long)]
        follow: bool,
    },
    /// Print the project's URL and open it in a browser when there is a desktop.
    Open { project: String },
    /// One-click databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run a command in a new container from the project's live image, with the app's
    /// environment and volumes; streams its output and exits with its exit code.
    Run {
        project: String,
        /// Kill it after this many seconds (server default: 3600).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// The program and its arguments, after `--` (no shell: `-- sh -c '...'` for one).
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// A project's scheduled jobs with their last run; `--run NAME` runs one now and follows
    /// it (exit code: the job's).
    Jobs {
        project: String,
        #[arg(long, value_name = "NAME")]
        run: Option<String>,
    },
    /// A project's pull-request previews: state, URL, head commit.
    Previews { project: String },
    /// A terminal in the project's running container (team admins and above); exits with
    /// the shell's exit code.
    Exec {
        project: String,
        /// A new container from the live image instead of the running one.
        #[arg(long)]
        fresh: bool,
        /// The shell to start (server default: exec.shell, /bin/sh).
        #[arg(long, value_name = "PATH")]
        shell: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Restore a backup into the database it is of (a safety backup is taken first; the
    /// restore runs in one transaction) and wait until it is done: exit 0 restored, 1 failed.
    Restore {
        /// The database's name or id.
        database: String,
        /// The backup's id (see the database's backups).
        backup: String,
        /// Restore into a new database instead of this one.
        #[arg(long)]
        new: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the variables (secret values are not shown).
    List { project: String },
    /// Set variables: KEY=VALUE ...
    Set {
        project: String,
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Store them as secrets (write-only).
        #[arg(long)]
        secret: bool,
        /// Also pass them to the image build.
        #[arg(long)]
        build: bool,
    },
    /// Remove variables.
    Unset {
        project: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (one line).
    Create {
        #[arg(long)]
        username: String,
        /// Give the user the admin role (default: member).
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a documented config file (default ./shard.toml; never overwrites).
    Init {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Print the effective configuration, secrets redacted.
    Show,
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        let listen = match &self.command {
            Command::Serve { listen } => *listen,
            _ => None,
        };
        Overrides {
            config_file: self.global.config.clone(),
            data_dir: self.global.data_dir.clone(),
            listen,
            no_default_file: matches!(self.command, Command::Plan { .. }),
        }
    }
}
