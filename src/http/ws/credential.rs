//! Who a WebSocket peer is, and whether that still holds: the refresh cookie (checked, not
//! rotated), an access token or an API token, re-checked on every ping tick.

use std::time::Instant;
use uuid::Uuid;

use super::{AUTH_DEADLINE, Closed, Connection};

use crate::auth::Actor;
use crate::db;
use crate::http::error::AppError;
use crate::secrets;
use crate::state::AppState;

/// What proved who the peer is; checked again on every tick.
#[derive(Debug, Clone)]
pub enum Credential {
    Access {
        user: Uuid,
        family: Uuid,
        expires: i64,
    },
    ApiToken {
        hash: String,
    },
    Cookie {
        user: Uuid,
        family: Uuid,
    },
}

/// The user of a valid (unused, unrevoked, unexpired) refresh cookie; it is not rotated.
pub async fn login_for_refresh_cookie(
    state: &AppState,
    token: &str,
) -> Result<Option<(Actor, Credential)>, AppError> {
    let Some(session) = db::sessions::find_by_hash(&state.db, &secrets::token_hash(token)).await?
    else {
        return Ok(None);
    };
    if session.revoked_at.is_some()
        || session.rotated_at.is_some()
        || session.expires_at <= chrono::Utc::now()
    {
        return Ok(None);
    }
    let user =
        db::users::find_with_active_login(&state.db, session.user_id, session.family_id).await?;
    Ok(user.map(|user| {
        let credential = Credential::Cookie {
            user: user.id,
            family: session.family_id,
        };
        (Actor::from(user), credential)
    }))
}

/// The user of an access or API token, and the credential to re-check later.
pub async fn login_for_token(
    state: &AppState,
    token: &str,
) -> Result<Option<(Actor, Credential)>, AppError> {
    use crate::http::auth::{TokenProof, resolve_token};
    Ok(resolve_token(state, token).await?.map(|(actor, proof)| {
        let credential = match proof {
            TokenProof::Access { family, expires } => Credential::Access {
                user: actor.user_id,
                family,
                expires,
            },
            TokenProof::Api { hash } => Credential::ApiToken { hash },
        };
        (actor, credential)
    }))
}

/// How a credential stands now.
pub enum Standing {
    Valid,
    /// The access token ran out; the login may still be fine (send a fresh token).
    Expired,
    /// Logged out, revoked, deleted: the connection ends.
    Revoked,
}

pub async fn standing(state: &AppState, credential: &Credential) -> Result<Standing, AppError> {
    let (user, family) = match credential {
        Credential::Access {
            user,
            family,
            expires,
        } => {
            if *expires <= chrono::Utc::now().timestamp() {
                return Ok(Standing::Expired);
            }
            (*user, *family)
        }
        Credential::Cookie { user, family } => (*user, *family),
        Credential::ApiToken { hash } => {
            let found = crate::http::auth::api_token_actor(state, hash).await?;
            return Ok(if found.is_some() {
                Standing::Valid
            } else {
                Standing::Revoked
            });
        }
    };
    Ok(
        match db::users::find_with_active_login(&state.db, user, family).await? {
            Some(_) => Standing::Valid,
            None => Standing::Revoked,
        },
    )
}

impl Credential {
    /// The login (session family) behind it, if it has one.
    pub fn family(&self) -> Option<Uuid> {
        match self {
            Credential::Access { family, .. } | Credential::Cookie { family, .. } => Some(*family),
            Credential::ApiToken { .. } => None,
        }
    }
}

impl Connection {
    /// A login revoked in this process: if it is ours, the connection ends now (a receiver
    /// that fell behind checks its credential instead).
    pub(super) async fn on_revocation(
        &mut self,
        revoked: Result<Uuid, tokio::sync::broadcast::error::RecvError>,
    ) -> Result<(), Closed> {
        let ours = self.credential.as_ref().and_then(Credential::family);
        match revoked {
            Ok(family) if Some(family) == ours => {
                let why = "the session was signed out or revoked";
                let _ = self.error(None, "session_ended", why).await;
                Err(Closed)
            }
            Ok(_) => Ok(()),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                self.check_credential().await
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => Ok(()),
        }
    }

    /// A revoked login ends the connection; an expired access token ends the subscriptions
    /// until the client authenticates again (within the auth deadline).
    pub(super) async fn check_credential(&mut self) -> Result<(), Closed> {
        let Some(credential) = self.credential.clone() else {
            return Ok(());
        };
        match standing(&self.state, &credential).await {
            Ok(Standing::Valid) | Err(_) => Ok(()),
            Ok(Standing::Expired) => {
                self.drop_all_subscriptions();
                self.actor = None;
                self.credential = None;
                self.auth_by = Instant::now() + AUTH_DEADLINE;
                let why = "the access token expired; send {\"op\":\"auth\"} with a fresh one and subscribe again";
                self.error(None, "unauthorized", why).await
            }
            Ok(Standing::Revoked) => {
                let why = "the session was signed out or revoked";
                let _ = self.error(None, "session_ended", why).await;
                Err(Closed)
            }
        }
    }
}
