//! Sign-in for the command-line client, device style: `shard login <url>` asks for a short
//! code and a secret poll token; a signed-in user approves the code in the dashboard, which
//! mints an API token for them; the CLI's next poll collects it, once. Pending sign-ins live
//! in memory only, for ten minutes at most, and their number is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// How long a code can be approved and collected.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// Sign-ins pending at once; more are refused until some end.
pub const MAX_PENDING: usize = 200;
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

struct Pending {
    poll_hash: String,
    /// What the CLI called itself (shown to the approver, and the token's name).
    name: String,
    expires: Instant,
    stage: Stage,
}

#[derive(Default)]
pub struct DeviceLogins {
    pending: Mutex<HashMap<String, Pending>>,
}

/// What the approver is shown.
pub struct Request {
    pub code: String,
    pub name: String,
    pub expires_in: Duration,
}

impl DeviceLogins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, p| p.expires > now);
        map
    }

    /// Opens a sign-in; `None` when too many are pending.
    pub fn start(&self, name: &str, poll_hash: String) -> Option<String> {
        let mut map = self.lock();
        if map.len() >= MAX_PENDING {
            return None;
        }
        let code = loop {
            let mut rng = rand::rng();
            let raw: String = (0..8)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect();
            let code = format!("{}-{}", &raw[..4], &raw[4..]);
            if !map.contains_key(&code) {
                break code;
            }
        };
        map.insert(
            code.clone(),
            Pending {
                poll_hash,
                name: name.to_string(),
                expires: Instant::now() + LIFETIME,
                stage: Stage::Waiting,
            },
        );
        Some(code)
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
    pub fn request(&self, code: &str) -> Option<Request> {
        let code = Self::normalize(code);
        let map = self.lock();
        let p = map.get(&code).filter(|p| p.stage == Stage::Waiting)?;
        Some(Request {
            name: p.name.clone(),
            expires_in: p.expires.saturating_duration_since(Instant::now()),
            code,
        })
    }

    /// Settles a waiting sign-in (approved with a token, or denied); false if there is none.
    pub fn settle(&self, code: &str, stage: Stage) -> bool {
        let code = Self::normalize(code);
        let mut map = self.lock();
        match map.get_mut(&code) {
            Some(p) if p.stage == Stage::Waiting => {
                p.stage = stage;
                true
            }
            _ => false,
        }
    }

    /// Where the sign-in with this poll token stands; an approved or denied one is removed as
    /// it is reported, so its token is handed out once. `None`: unknown or expired.
    pub fn poll(&self, poll_hash: &str) -> Option<Stage> {
        let mut map = self.lock();
        let code = map
            .iter()
            .find(|(_, p)| {
                crate::secrets::constant_time_eq(p.poll_hash.as_bytes(), poll_hash.as_bytes())
            })
            .map(|(code, _)| code.clone())?;
        let stage = map.get(&code)?.stage.clone();
        if stage != Stage::Waiting {
            map.remove(&code);
        }
        Some(stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_approved_once_and_its_token_collected_once() {
        let logins = DeviceLogins::default();
        let code = logins.start("laptop", "h1".into()).unwrap();
        assert_eq!(logins.poll("h1"), Some(Stage::Waiting));
        assert_eq!(
            logins
                .request(&code.to_lowercase().replace('-', ""))
                .unwrap()
                .name,
            "laptop"
        );
        let approved = Stage::Approved {
            token: "t".into(),
            username: "u".into(),
        };
        assert!(logins.settle(&code, approved.clone()));
        assert!(!logins.settle(&code, Stage::Denied), "settled twice");
        assert_eq!(logins.poll("h2"), None);
        assert_eq!(logins.poll("h1"), Some(approved));
        assert_eq!(logins.poll("h1"), None, "collected twice");
    }

    #[test]
    fn pending_sign_ins_are_bounded() {
        let logins = DeviceLogins::default();
        for i in 0..MAX_PENDING {
            assert!(logins.start("x", format!("h{i}")).is_some());
        }
        assert!(logins.start("x", "more".into()).is_none());
    }
}
