//! The command line (clap): `serve`, `migrate`, `user create`, `config init|show`.

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
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Write or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
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
        }
    }
}
