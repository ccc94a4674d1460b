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

/// The registry's HTTP API (v2), for deleting pruned images: one client (the registry's CA,
/// the stored credentials) for a whole prune.
pub struct Registry {
    address: String,
    client: reqwest::Client,
    credentials: Option<Credentials>,
}

impl Registry {
    /// The registry Swarm deploys use, if any (`registry.url`).
    pub async fn of(
        config: &crate::config::Config,
        db: &Db,
        sealer: &Sealer,
    ) -> anyhow::Result<Option<Self>> {
        use anyhow::Context;
        let Some(address) = config.image_registry() else {
            return Ok(None);
        };
        let mut client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(15));
        if let Some(ca) = &config.registry.ca_file {
            let pem = tokio::fs::read(ca)
                .await
                .with_context(|| format!("cannot read registry.ca_file {}", ca.display()))?;
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(Some(Self {
            address: address.to_string(),
            client: client.build()?,
            credentials: load(db, sealer).await?,
        }))
    }

    /// Whether `image` lives in this registry.
    pub fn holds(&self, image: &str) -> bool {
        image
            .strip_prefix(&self.address)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    fn signed(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some(c) => request.basic_auth(&c.username, Some(&c.password)),
            None => request,
        }
    }

    /// Deletes a pruned image's manifest (`<registry>/<name>:<tag>`), so the registry does
    /// not grow with every deploy; `Ok` when it is gone (or was never there). The registry
    /// must allow deletes (`storage.delete.enabled`); its own garbage collection frees the
    /// blobs.
    pub async fn delete(&self, image: &str) -> anyhow::Result<()> {
        use anyhow::Context;
        let Some((name, tag)) = image
            .strip_prefix(&self.address)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.rsplit_once(':'))
        else {
            anyhow::bail!("{image} is not an image of {}", self.address);
        };
        let base = format!("https://{}/v2/{name}/manifests", self.address);
        let head = self
            .signed(self.client.head(format!("{base}/{tag}")))
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.docker.distribution.manifest.v2+json, \
                 application/vnd.docker.distribution.manifest.list.v2+json, \
                 application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await?;
        if head.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        if !head.status().is_success() {
            anyhow::bail!("the registry answered {} for {image}", head.status());
        }
        let digest = head
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .context("the registry named no digest")?
            .to_string();
        let deleted = self
            .signed(self.client.delete(format!("{base}/{digest}")))
            .send()
            .await?;
        match deleted.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            reqwest::StatusCode::METHOD_NOT_ALLOWED => {
                anyhow::bail!("the registry does not allow deletes (storage.delete.enabled)")
            }
            s => anyhow::bail!("the registry answered {s} to the delete of {image}"),
        }
    }
}
