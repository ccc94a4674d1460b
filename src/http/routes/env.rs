//! `/projects/{id}/env`: a project's environment variables. Values are sealed before they
//! reach the database; secret values are never returned.

use std::collections::{HashMap, HashSet};

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::{self, env_vars::EnvVar};
use crate::deploy::env;
use crate::http::access::{Configure, ProjectFor, Read};
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/env", web::get().to(get_env))
        .route("/projects/{id}/env", web::put().to(put_env));
}

const MAX_VARS: usize = 500;
const MAX_VALUE_BYTES: usize = 32 * 1024;

#[derive(Serialize, ToSchema)]
pub struct EnvVarView {
    pub key: String,
    /// The value, or `null` for a secret (it is write-only).
    pub value: Option<String>,
    pub secret: bool,
    /// Also passed to the image build as a build argument.
    pub build: bool,
    /// A secret that pull-request previews get too (plain variables always reach them);
    /// present only when set.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EnvView {
    pub vars: Vec<EnvVarView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvVarInput {
    pub key: String,
    /// Omit or `null` on an existing secret to keep its stored value.
    pub value: Option<String>,
    /// Omitted: an existing variable keeps its setting (a secret stays secret); a new one is
    /// not secret.
    pub secret: Option<bool>,
    #[serde(default)]
    pub build: bool,
    /// Give this secret to pull-request previews too (never the default).
    #[serde(default)]
    pub preview: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEnv {
    pub vars: Vec<EnvVarInput>,
}

fn open(state: &AppState, var: &EnvVar) -> AppResult<String> {
    Ok(env::open(&state.sealer, var)?)
}

fn to_view(state: &AppState, vars: &[EnvVar]) -> AppResult<EnvView> {
    let vars = vars
        .iter()
        .map(|v| {
            Ok(EnvVarView {
                key: v.key.clone(),
                value: if v.secret {
                    None
                } else {
                    Some(open(state, v)?)
                },
                secret: v.secret,
                build: v.build,
                preview: v.preview,
            })
        })
        .collect::<AppResult<_>>()?;
    Ok(EnvView { vars })
}

#[utoipa::path(get, path = "/api/v1/projects/{id}/env", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")), responses((status = 200, body = EnvView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_env(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<EnvView>> {
    let vars = db::env_vars::list(&state.db, project.id).await?;
    Ok(web::Json(to_view(&state, &vars)?))
}

/// Replaces the whole set. A secret sent without a value keeps the one stored.
#[utoipa::path(put, path = "/api/v1/projects/{id}/env", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = PutEnv,
    responses((status = 200, body = EnvView), (status = 403), (status = 404), (status = 422)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn put_env(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Configure>,
    body: JsonBody<PutEnv>,
) -> AppResult<web::Json<EnvView>> {
    let body = body.parse()?;
    let input = body.vars;
    if input.len() > MAX_VARS {
        return Err(AppError::validation(
            "vars",
            format!("at most {MAX_VARS} variables"),
        ));
    }
    let existing: HashMap<String, EnvVar> = db::env_vars::list(&state.db, project.id)
        .await?
        .into_iter()
        .map(|v| (v.key.clone(), v))
        .collect();
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(input.len());
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (i, var) in input.into_iter().enumerate() {
        let field = format!("vars[{i}].key");
        validate::env_key(&var.key).field(&field)?;
        if !seen.insert(var.key.clone()) {
            return Err(AppError::validation(
                &field,
                format!("duplicate key {}", var.key),
            ));
        }
        let value = match var.value.clone() {
            Some(value) => value,
            None => match existing.get(&var.key) {
                Some(old) if old.secret => open(&state, old)?,
                _ => {
                    return Err(AppError::validation(
                        &format!("vars[{i}].value"),
                        "is required (only an existing secret may omit it)",
                    ));
                }
            },
        };
        if value.len() > MAX_VALUE_BYTES || value.contains('\0') {
            return Err(AppError::validation(
                &format!("vars[{i}].value"),
                format!("must be at most {MAX_VALUE_BYTES} bytes without NUL characters"),
            ));
        }
        let kept = var.value.is_none();
        let secret = var
            .secret
            .unwrap_or_else(|| existing.get(&var.key).is_some_and(|old| old.secret));
        if kept && !secret {
            // A stored secret turns plain only with a new value: otherwise anyone who may
            // configure could read back a value they were never shown.
            return Err(AppError::validation(
                &format!("vars[{i}].secret"),
                "a secret becomes non-secret only with a new value",
            ));
        }
        match existing.get(&var.key) {
            None => added.push(var.key.clone()),
            Some(old)
                if old.secret != secret
                    || old.build != var.build
                    || old.preview != var.preview
                    || open(&state, old)? != value =>
            {
                changed.push(var.key.clone())
            }
            Some(_) => {}
        }
        // A git token is for the host it was saved with: a kept one keeps its binding.
        let bound_host = if var.key != env::GIT_TOKEN_VAR {
            None
        } else if kept {
            existing
                .get(&var.key)
                .and_then(|old| old.bound_host.clone())
        } else {
            crate::egress::origin(&project.git_url)
        };
        let mut row = env::seal(
            &state.sealer,
            project.id,
            var.key,
            &value,
            secret,
            var.build,
            bound_host,
        );
        row.preview = var.preview;
        rows.push(row);
    }
    let removed: Vec<&String> = existing.keys().filter(|k| !seen.contains(*k)).collect();
    // Keys only: values (secret or not) never reach the audit log.
    crate::http::audit::action(&req, "env.update", "project", project.id);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "added": added, "changed": changed, "removed": removed }),
    );
    db::env_vars::replace(&state.db, project.id, rows).await?;
    let vars = db::env_vars::list(&state.db, project.id).await?;
    Ok(web::Json(to_view(&state, &vars)?))
}
