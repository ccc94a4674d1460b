//! `GET /projects/{id}/plan`: the build plan of the project's branch tip, without building
//! (what an `auto` build of it would do, with the evidence of each decision and the
//! Dockerfile to eject).

use actix_web::web;

use crate::build::Plan;
use crate::http::access::{ProjectFor, Read};
use crate::http::error::AppResult;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/plan", web::get().to(get_plan));
}

/// Fetches the branch tip (as a deploy would: same source checks, credentials and limits) and
/// plans it. A tree nothing recognizes, or a version the configured images cannot provide, is
/// a 422 whose message says what to do; a repository that cannot be fetched is a 422 on
/// `git_url`; plans take turns, two at once, and one that waits past 30 s is a 503.
#[utoipa::path(get, path = "/api/v1/projects/{id}/plan", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 200, body = Plan), (status = 404), (status = 422, description = "not fetchable, or nothing to plan"), (status = 503, description = "too many plans at once")),
    security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_plan(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<Plan>> {
    Ok(web::Json(state.deployer.plan_tip(&project).await?))
}
