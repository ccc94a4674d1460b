//! `GET /audit`: the audit log, newest first, filterable. Instance admins read all of it;
//! team owners read the entries about their teams.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{self, Action};
use crate::db::{self, audit::Filter};
use crate::http::auth::Authenticated;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list_audit));
}

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only this team's entries.
    pub team_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// The acting user's name (or `github` for webhook deliveries).
    pub actor: Option<String>,
    /// An action or its prefix: `projects` matches `projects.create`, `projects.env.replace`.
    pub action: Option<String>,
    /// RFC 3339 times.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Entries older than this id (the `id` of the last entry of the previous page).
    pub before: Option<i64>,
    /// At most this many (default 100, max 500).
    pub limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    /// The user's name at the time (kept when the user is gone).
    pub actor: Option<String>,
    /// The API token used, if one was.
    pub token_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub detail: Option<serde_json::Value>,
    pub ip: Option<String>,
    /// The HTTP status of the answer.
    pub status: Option<i32>,
}

fn time(field: &str, raw: &Option<String>) -> AppResult<Option<DateTime<Utc>>> {
    raw.as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| AppError::validation(field, "must be an RFC 3339 time"))
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 403, description = "neither an admin nor a team owner"), (status = 404), (status = 422)),
    security(("bearer" = [])))]
pub async fn list_audit(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    query: web::Query<AuditQuery>,
) -> AppResult<web::Json<Vec<AuditView>>> {
    let q = query.into_inner();
    let teams = if access::instance_admin(&actor).is_ok() {
        None
    } else if let Some(team) = q.team_id {
        access::team(&state.db, &actor, team, Action::Own).await?;
        Some(vec![team])
    } else {
        let owned: Vec<Uuid> = db::teams::of_user(&state.db, actor.user_id)
            .await?
            .into_iter()
            .filter(|(_, role)| *role == crate::model::Role::Owner)
            .map(|(t, _)| t.id)
            .collect();
        if owned.is_empty() || actor.is_narrowed() {
            return Err(AppError::Forbidden(
                "the audit log is for admins and team owners (with an unlimited admin token)"
                    .into(),
            ));
        }
        Some(owned)
    };
    let filter = Filter {
        teams,
        actor: q.actor,
        action: q.action,
        project: q.project_id,
        team: q.team_id,
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
        before: q.before,
        limit: q.limit.unwrap_or(100).clamp(1, 500),
    };
    let entries = db::audit::list(&state.db, filter).await?;
    Ok(web::Json(
        entries
            .into_iter()
            .map(|e| AuditView {
                id: e.id,
                at: e.created_at,
                actor_id: e.actor_id,
                actor: e.actor_name,
                token_id: e.token_id,
                action: e.action,
                target_type: e.target_type,
                target_id: e.target_id,
                team_id: e.team_id,
                project_id: e.project_id,
                detail: e.detail.and_then(|d| serde_json::from_str(&d).ok()),
                ip: e.ip,
                status: e.status,
            })
            .collect(),
    ))
}
