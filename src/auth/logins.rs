//! A short-lived memory of logins found active, so a burst of requests with one access token
//! costs one database check instead of one per request (each SQLite query is a round trip to
//! the connection's worker thread, and it dominated every authenticated request). A logout or
//! a detected reuse in this process forgets the login at once; one made by another instance
//! sharing a Postgres database takes effect here within `TTL`. Revocations made here are also
//! broadcast, so open WebSockets of that login end at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Actor;

/// How long a checked login is believed without asking the database again.
pub const TTL: Duration = Duration::from_secs(2);
/// Logins remembered at most; a full map is cleared (it only costs database checks).
const MAX_ENTRIES: usize = 10_000;

pub struct ActiveLogins {
    entries: Mutex<HashMap<Uuid, (Actor, Instant)>>,
    /// Every revocation made here, for open WebSockets to end at once.
    revocations: tokio::sync::broadcast::Sender<Uuid>,
    /// Logins revoked here lately: a check that read the database just before the revocation
    /// must not put them back.
    revoked: Mutex<HashMap<Uuid, Instant>>,
}

impl Default for ActiveLogins {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            revocations: tokio::sync::broadcast::channel(256).0,
            revoked: Mutex::default(),
        }
    }
}

impl ActiveLogins {
    /// Logins revoked in this process from now on (a lagging receiver should re-check its own).
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.revocations.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Actor, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instant>> {
        self.revoked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user of login `family`, if it was found active less than `TTL` ago.
    pub fn get(&self, family: Uuid, user: Uuid) -> Option<Actor> {
        let entries = self.lock();
        let (actor, at) = entries.get(&family)?;
        (actor.user_id == user && at.elapsed() < TTL).then(|| actor.clone())
    }

    pub fn remember(&self, family: Uuid, actor: Actor) {
        if self.revoked().contains_key(&family) {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(family, (actor, Instant::now()));
    }

    /// The login was revoked here: stop believing it now.
    pub fn forget(&self, family: Uuid) {
        let mut revoked = self.revoked();
        if revoked.len() >= MAX_ENTRIES {
            revoked.retain(|_, at| at.elapsed() < 5 * TTL);
            if revoked.len() >= MAX_ENTRIES {
                revoked.clear();
            }
        }
        revoked.insert(family, Instant::now());
        drop(revoked);
        self.lock().remove(&family);
        let _ = self.revocations.send(family);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_briefly_and_forgets_on_revocation() {
        let logins = ActiveLogins::default();
        let (family, user) = (Uuid::now_v7(), Uuid::now_v7());
        let actor = Actor {
            user_id: user,
            username: "a".into(),
            role: crate::model::UserRole::Member,
            token: None,
        };
        assert!(logins.get(family, user).is_none());
        logins.remember(family, actor);
        assert!(logins.get(family, user).is_some());
        assert!(
            logins.get(family, Uuid::now_v7()).is_none(),
            "another user's token"
        );
        logins.forget(family);
        assert!(logins.get(family, user).is_none());
        // A check that raced the revocation cannot bring it back.
        logins.remember(
            family,
            Actor {
                user_id: user,
                username: "a".into(),
                role: crate::model::UserRole::Member,
                token: None,
            },
        );
        assert!(logins.get(family, user).is_none());
    }
}
