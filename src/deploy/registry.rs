//! The registry credentials Swarm deploys push and pull with: a user and password an admin
//! sets (`PUT /api/v1/registry/credentials`), kept sealed in the database (shared by every
//! instance) and never shown again. Without them the registry is reached with TLS only
//! (`registry.ca_file`).

use serde::{Deserialize, Serialize};

use crate::db::{self, Db};
use crate::docker::RegistryAuth;
use crate::secrets::Sealer;

const KEY: &str = "registry-credentials";

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The stored credentials, if any (and when they were set).
pub async fn load(db: &Db, sealer: &Sealer) -> Result<Option<Credentials>, sea_orm::DbErr> {
    let Some(value) = db::shared::get(db, sealer, KEY).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&value).ok())
}

pub async fn store(db: &Db, sealer: &Sealer, credentials: &Credentials) -> anyhow::Result<()> {
    let value = serde_json::to_vec(credentials)?;
    db::shared::put(db, sealer, KEY, &value, None).await?;
    Ok(())
}

pub async fn clear(db: &Db) -> Result<(), sea_orm::DbErr> {
    db::shared::delete(db, KEY).await
}

/// What the engine sends to the registry at `server`, when credentials are set.
pub async fn auth_for(
    db: &Db,
    sealer: &Sealer,
    server: Option<&str>,
) -> Result<Option<RegistryAuth>, sea_orm::DbErr> {
    let (Some(server), Some(c)) = (server, load(db, sealer).await?) else {
        return Ok(None);
    };
    Ok(Some(RegistryAuth {
        username: c.username,
        password: c.password,
        server: server.to_string(),
    }))
}
