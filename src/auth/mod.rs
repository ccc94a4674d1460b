//! Authentication: argon2id passwords, short-lived JWT access tokens, rotating refresh tokens
//! (see `db::sessions`), API tokens, and the login rate limiter. HTTP wiring is in `http::auth`.
//!
//! # Auth flow
//!
//! Login verifies argon2id and issues a 15-minute JWT (`sub` user, `sid` session family) plus a random
//! refresh token in an HttpOnly, SameSite=Strict cookie scoped to `/api/v1` (so the WebSocket can
//! use it), stored as SHA-256.
//! `/auth/refresh` marks the presented token rotated (a conditional update, so two racing refreshes
//! cannot both win) and issues a new one in the same family. Presenting a rotated token revokes the
//! family. Revocation is final: a login is active only while none of its tokens was ever revoked,
//! so a refresh that races a logout or a reuse detection cannot bring it back (its new token is
//! dead on arrival, and the refresh answers 401). Each authenticated request checks the JWT, then
//! loads the user in one query that also requires its family to be active; a login found active is
//! believed for 2 s (`auth::ActiveLogins`, at most 10,000 entries), forgotten at once when it is
//! revoked in this process (and never re-remembered after), so a logout on another instance
//! sharing Postgres takes effect here within 2 s. API tokens (`shard_…`) resolve by hash to the
//! token row (unexpired) and its user, and narrow the user's rights: `read` reads, `deploy` also
//! deploys and controls apps, `admin` does all the user may; a token limited to projects sees
//! only those. A token mints only tokens no wider than itself; its last use is written at most
//! once a minute.
//!
//!
//! ## Teams and roles
//!
//! Every user has a personal team (theirs alone); a project belongs to one team. In a team,
//! `viewer` reads, `member` also deploys, rolls back, cancels, starts/stops/restarts and creates
//! projects, `admin` also changes settings, environment, domains and members below owner, and
//! `owner` also deletes projects and the team, makes owners and reads the team's audit log.
//! Instance admins act as owners of every team. Invitations are single-use links bound to one
//! username, expiring (72 h by default), stored as hashes; accepting is a conditional update, so
//! two racing accepts cannot both win.
//!
//! Cookie-authenticated requests (`/auth/refresh`, `/auth/logout`, the WebSocket) must come from the
//! dashboard itself: a browser's `Sec-Fetch-Site` must be `same-origin` (or `none`) and its `Origin`
//! the request's own host or `public_url` — apps at `<slug>.<apps.domain>` are the same *site* as the
//! dashboard, so `SameSite=Strict` alone would let their pages use the cookie. Clients that send
//! neither header (scripts) are not affected.
//!
//! Logins are rate-limited per client address (all attempts) and per username *from that address*
//! (failures), so a stranger failing logins for `admin` locks out only their own address. The client
//! address is the TCP peer, or, when the peer is listed in `http.trusted_proxies`, the first
//! untrusted hop of `X-Forwarded-For` read from the right. The dashboard never lets two refreshes
//! overlap (one in flight per tab, a Web Lock across tabs), so several open tabs do not look like
//! reuse.

pub mod device;
mod limiter;
pub mod logins;
mod password;
mod tokens;

pub use limiter::{ApiLimiter, LoginLimiter};
pub use logins::ActiveLogins;
pub use password::PasswordHasher;
pub use tokens::{AccessClaims, TokenKeys};

use uuid::Uuid;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub username: String,
    /// The instance role: `admin` or `member`.
    pub role: crate::model::UserRole,
    /// Set when the caller used an API token: what it narrows the user's rights to.
    pub token: Option<TokenGrant>,
}

/// What an API token allows: its scope and, optionally, the only projects it reaches.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub id: Uuid,
    pub scope: crate::model::Scope,
    pub projects: Option<Vec<Uuid>>,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<crate::db::users::User> for Actor {
    fn from(user: crate::db::users::User) -> Self {
        Actor {
            user_id: user.id,
            username: user.username,
            role: user.role,
            token: None,
        }
    }
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == crate::model::UserRole::Admin
    }

    /// True when an API token narrows the user's rights (a scope below `admin`, or a project
    /// list): such a credential reaches no account or instance-wide setting.
    pub fn is_narrowed(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.scope < crate::model::Scope::Admin || t.projects.is_some())
    }
}

/// Prefix of API tokens, so they are recognisable in a leaked config and told apart from JWTs.
pub const API_TOKEN_PREFIX: &str = "shard_";
