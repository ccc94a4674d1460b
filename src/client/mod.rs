//! The `shard` command-line client: `login`, `projects`, `deploy [--follow]`, `logs`, `env`,
//! `rollback`, `open`, each with `--json` for scripts. It speaks the public REST API and the
//! WebSocket like any other client, with an API token stored by `shard login`. Exit codes say
//! how a command ended (see `ClientError::exit_code`).

mod api;
mod commands;
pub mod credentials;
mod databases;
mod follow;
mod login;
mod tasks;

use std::process::ExitCode;

use crate::cli::ClientCommand;

/// Why a client command did not succeed.
#[derive(Debug)]
pub enum ClientError {
    /// The server refused (its error body, in its words).
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The deploy ended, but not live.
    DeployFailed(String),
    /// Not logged in, or the stored credentials are unusable.
    NotLoggedIn(String),
    /// The server could not be reached or answered nonsense.
    Unreachable(String),
    /// The command line itself is wrong.
    Usage(String),
    /// A command run on the server (`shard run`) ended with this exit code (or failed
    /// without one: 1), for the reason given.
    Exited(u8, String),
}

impl ClientError {
    /// 0 success; 1 the deploy ended failed or cancelled; 2 bad usage; 3 the server refused
    /// (a 4xx answer); 4 not logged in, server unreachable or failing (5xx).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::DeployFailed(_) => 1,
            ClientError::Exited(code, _) => *code,
            ClientError::Usage(_) => 2,
            ClientError::Api { status, .. } if *status < 500 => 3,
            _ => 4,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            ClientError::DeployFailed(m)
            | ClientError::NotLoggedIn(m)
            | ClientError::Unreachable(m)
            | ClientError::Usage(m)
            | ClientError::Exited(_, m) => m.clone(),
        }
    }

    fn json(&self) -> serde_json::Value {
        let code = match self {
            ClientError::Api { code, .. } => code.as_str(),
            ClientError::DeployFailed(_) => "deploy_failed",
            ClientError::NotLoggedIn(_) => "not_logged_in",
            ClientError::Unreachable(_) => "unreachable",
            ClientError::Usage(_) => "usage",
            ClientError::Exited(..) => "command_failed",
        };
        serde_json::json!({"error": {"code": code, "message": self.message()}})
    }
}

/// Runs a client command on its own small runtime and maps the outcome to the exit code.
pub fn run(command: ClientCommand, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("shard: cannot start: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(commands::dispatch(command, json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A finished deploy or run already printed its outcome.
            if json && !matches!(e, ClientError::DeployFailed(_) | ClientError::Exited(..)) {
                println!("{}", e.json());
            }
            if !e.message().is_empty() {
                eprintln!("shard: {}", e.message());
            }
            ExitCode::from(e.exit_code())
        }
    }
}
