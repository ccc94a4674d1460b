//! Env var sealing in one place: values are sealed (AES-256-GCM, the row id as associated
//! data) before they reach the database and opened only here, for the API's non-secret
//! values and for a deploy at the last moment.

use uuid::Uuid;

use crate::db::{self, env_vars::EnvVar};
use crate::secrets::Sealer;

/// Env var holding a token for private repositories; used for the fetch, never injected.
pub const GIT_TOKEN_VAR: &str = "SHARD_GIT_TOKEN";

/// An opened variable.
pub struct OpenVar {
    pub key: String,
    pub value: String,
    pub secret: bool,
    pub build: bool,
    /// For `SHARD_GIT_TOKEN`: the origin it was saved for.
    pub bound_host: Option<String>,
}

/// Opens one stored value.
pub fn open(sealer: &Sealer, var: &EnvVar) -> anyhow::Result<String> {
    let clear = sealer
        .open(&var.value_sealed, var.id.as_bytes())
        .map_err(|e| anyhow::anyhow!("env var {}: {e}", var.key))?;
    String::from_utf8(clear).map_err(|_| anyhow::anyhow!("env var {} is not UTF-8", var.key))
}

pub fn open_all(sealer: &Sealer, vars: &[EnvVar]) -> anyhow::Result<Vec<OpenVar>> {
    vars.iter()
        .map(|v| {
            Ok(OpenVar {
                key: v.key.clone(),
                value: open(sealer, v)?,
                secret: v.secret,
                build: v.build,
                bound_host: v.bound_host.clone(),
            })
        })
        .collect()
}

/// Everything `project`'s app gets: its own variables; for a pull request's preview also its
/// parent's plain variables and the secrets marked `preview` (its own of the same name win);
/// then the variables of the databases attached to it (those win over both; a preview has
/// none of its parent's).
pub async fn for_project(
    db: &crate::db::Db,
    sealer: &Sealer,
    project: &crate::db::projects::Project,
) -> anyhow::Result<Vec<OpenVar>> {
    let mut opened = open_all(sealer, &db::env_vars::list(db, project.id).await?)?;
    if let Some(parent) = project.preview_of {
        let inherited: Vec<EnvVar> = db::env_vars::list(db, parent)
            .await?
            .into_iter()
            .filter(|v| !v.secret || v.preview)
            .filter(|v| !opened.iter().any(|o| o.key == v.key))
            .collect();
        opened.extend(open_all(sealer, &inherited)?);
        opened.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let attached = attached(db, sealer, project.id).await?;
    opened.retain(|v| !attached.iter().any(|a| a.key == v.key));
    opened.extend(attached);
    Ok(opened)
}

/// The variables of the databases attached to `project` (secret, runtime only).
pub async fn attached(
    db: &crate::db::Db,
    sealer: &Sealer,
    project: Uuid,
) -> anyhow::Result<Vec<OpenVar>> {
    let mut vars = Vec::new();
    for database in db::databases::attached_to(db, project).await? {
        for (key, value) in crate::storage::databases::connection_env(sealer, &database)? {
            vars.push(OpenVar {
                key,
                value,
                secret: true,
                build: false,
                bound_host: None,
            });
        }
    }
    Ok(vars)
}

/// A new row for `project` holding `value` sealed under the row's fresh id; `bound_host` is
/// the origin a `SHARD_GIT_TOKEN` is for.
pub fn seal(
    sealer: &Sealer,
    project: Uuid,
    key: String,
    value: &str,
    secret: bool,
    build: bool,
    bound_host: Option<String>,
) -> EnvVar {
    let id = db::new_id();
    EnvVar {
        bound_host,
        id,
        project_id: project,
        key,
        value_sealed: sealer.seal(value.as_bytes(), id.as_bytes()),
        secret,
        build,
        created_at: db::now(),
        preview: false,
    }
}
