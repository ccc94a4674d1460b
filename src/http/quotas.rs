//! `[quotas]` at the edge: before a project is created or a deploy queued, what the caller and
//! the team already use is counted from the database (so the count holds across instances).
//! Instance admins are not held to these. A quota used up is a 429 with `Retry-After` that
//! names the quota.

use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::auth::Actor;
use crate::db::{self, projects::Project};
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;

const HOUR_SECS: u64 = 3600;

fn over(message: String, retry_after_secs: u64) -> AppError {
    AppError::OverQuota {
        message,
        retry_after_secs,
    }
}

/// Whether 0 < `limit` <= `used`.
fn reached(used: u64, limit: u32) -> bool {
    limit > 0 && used >= u64::from(limit)
}

/// A new project for `actor` in `team`.
pub async fn project(state: &AppState, actor: &Actor, team: Uuid) -> AppResult<()> {
    if actor.is_admin() {
        return Ok(());
    }
    let q = &state.config.quotas;
    let mine = db::projects::count_owned(&state.db, actor.user_id).await?;
    if reached(mine, q.projects_per_user) {
        return Err(over(
            format!(
                "you have {mine} projects, the most a user may create here \
                 (quotas.projects_per_user); delete one first"
            ),
            HOUR_SECS,
        ));
    }
    let theirs = db::teams::count_projects(&state.db, team).await?;
    if reached(theirs, q.projects_per_team) {
        return Err(over(
            format!(
                "the team has {theirs} projects, the most a team may hold here \
                 (quotas.projects_per_team); delete one first"
            ),
            HOUR_SECS,
        ));
    }
    Ok(())
}

/// A deploy (or rollback) of `project` requested by `actor`.
pub async fn deploy(state: &AppState, actor: &Actor, project: &Project) -> AppResult<()> {
    if actor.is_admin() {
        return Ok(());
    }
    let q = &state.config.quotas;
    let since = Utc::now() - Duration::hours(1);
    let mine = db::deployments::count_requested_by(&state.db, actor.user_id, since).await?;
    if reached(mine, q.deploys_per_hour_per_user) {
        return Err(over(
            format!(
                "you requested {mine} deploys in the last hour, the most allowed \
                 (quotas.deploys_per_hour_per_user)"
            ),
            HOUR_SECS,
        ));
    }
    let Some(team) = project.team_id else {
        return Ok(());
    };
    let projects = db::projects::ids_in_team(&state.db, team).await?;
    let (recent, queued) = db::deployments::count_for_projects(&state.db, &projects, since).await?;
    if reached(recent, q.deploys_per_hour_per_team) {
        return Err(over(
            format!(
                "the team's projects had {recent} deploys in the last hour, the most allowed \
                 (quotas.deploys_per_hour_per_team)"
            ),
            HOUR_SECS,
        ));
    }
    if reached(queued, q.queued_deploys_per_team) {
        return Err(over(
            format!(
                "{queued} deploys of the team's projects are already waiting \
                 (quotas.queued_deploys_per_team); retry when some have started"
            ),
            60,
        ));
    }
    Ok(())
}
