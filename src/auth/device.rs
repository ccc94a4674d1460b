//! Sign-in for the command-line client, device style: `shard login <url>` asks for a short
//! code and a secret poll token; a signed-in user approves the code in the dashboard, which
//! mints an API token for them; the CLI's next poll collects it, once. Pending sign-ins live
//! in the database (`db::cli_logins`), so with several instances on one Postgres the CLI may
//! poll one while the approval reaches another; they last ten minutes and their number is
//! bounded. The approved token waits there sealed, with the code as associated data.

use crate::model::CliLoginState;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sea_orm::DbErr;

use crate::db::{self, Db, cli_logins};
use crate::secrets::Sealer;

/// How long a code can be approved and collected.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// Sign-ins pending at once; more are refused until some end.
pub const MAX_PENDING: u64 = 200;
/// Letters and digits nobody mistakes for each other.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    Waiting,
    /// Approved by `username`; `token` is handed to the first poll.
    Approved {
        token: String,
        username: String,
    },
    Denied,
}

pub struct DeviceLogins {
    db: Db,
    sealer: Arc<Sealer>,
}

/// What the approver is shown.
pub struct Request {
    pub code: String,
    pub name: String,
    pub expires_in: Duration,
}

impl DeviceLogins {
    pub fn new(db: Db, sealer: Arc<Sealer>) -> Self {
        Self { db, sealer }
    }

    /// Opens a sign-in; `None` when too many are pending.
    pub async fn start(&self, name: &str, poll_hash: &str) -> Result<Option<String>, DbErr> {
        if cli_logins::pending(&self.db).await? >= MAX_PENDING {
            return Ok(None);
        }
        let expires = db::now() + chrono::Duration::seconds(LIFETIME.as_secs() as i64);
        loop {
            let code = {
                let mut rng = rand::rng();
                let raw: String = (0..8)
                    .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                    .collect();
                format!("{}-{}", &raw[..4], &raw[4..])
            };
            match cli_logins::insert(&self.db, &code, poll_hash, name, expires).await {
                Ok(()) => return Ok(Some(code)),
                // A code in use (one in 10^12): draw another. A reused poll hash cannot
                // happen: poll tokens are random.
                Err(e) if db::is_unique_violation(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn normalize(code: &str) -> String {
        let raw: String = code
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if raw.len() == 8 {
            format!("{}-{}", &raw[..4], &raw[4..])
        } else {
            raw
        }
    }

    /// The waiting sign-in with this code.
    pub async fn request(&self, code: &str) -> Result<Option<Request>, DbErr> {
        let code = Self::normalize(code);
        let Some(login) = cli_logins::waiting(&self.db, &code).await? else {
            return Ok(None);
        };
        let left = (login.expires_at - db::now()).num_seconds().max(0) as u64;
        Ok(Some(Request {
            name: login.name,
            expires_in: Duration::from_secs(left),
            code,
        }))
    }

    /// Settles a waiting sign-in (approved with a token, or denied); false if there is none.
    pub async fn settle(&self, code: &str, stage: Stage) -> Result<bool, DbErr> {
        let code = Self::normalize(code);
        let (name, sealed, username) = match stage {
            Stage::Waiting => return Ok(false),
            Stage::Denied => (CliLoginState::Denied, None, None),
            Stage::Approved { token, username } => (
                CliLoginState::Approved,
                Some(self.sealer.seal(token.as_bytes(), code.as_bytes())),
                Some(username),
            ),
        };
        cli_logins::settle(&self.db, &code, name, sealed, username).await
    }

    /// Where the sign-in with this poll token stands; an approved or denied one is removed as
    /// it is reported, so its token is handed out once. `None`: unknown, expired or already
    /// collected.
    pub async fn poll(&self, poll_hash: &str) -> Result<Option<Stage>, DbErr> {
        let Some(login) = cli_logins::by_poll_hash(&self.db, poll_hash).await? else {
            return Ok(None);
        };
        let stage = match login.stage {
            CliLoginState::Waiting => return Ok(Some(Stage::Waiting)),
            CliLoginState::Approved => {
                let token = login
                    .token_sealed
                    .as_deref()
                    .and_then(|sealed| self.sealer.open(sealed, login.code.as_bytes()).ok())
                    .and_then(|clear| String::from_utf8(clear).ok());
                match token {
                    Some(token) => Stage::Approved {
                        token,
                        username: login.username.clone().unwrap_or_default(),
                    },
                    // Sealed under another key: nothing this instance can hand out.
                    None => Stage::Denied,
                }
            }
            _ => Stage::Denied,
        };
        // Whoever deletes the row reports it; a racing poll finds nothing.
        if !cli_logins::collect(&self.db, &login.code).await? {
            return Ok(None);
        }
        Ok(Some(stage))
    }
}
