//! Authentication: argon2id passwords, short-lived JWT access tokens, rotating refresh tokens
//! (see `db::sessions`), API tokens, and the login rate limiter. HTTP wiring is in `http::auth`.

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
