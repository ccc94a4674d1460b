//! The one ownership check. Every route that takes a resource id resolves it here; a resource
//! the caller may not see is reported exactly like one that does not exist (404).

use uuid::Uuid;

use crate::auth::Actor;
use crate::db::{self, Db, projects::Project};
use crate::error::{AppError, AppResult};

/// Admins see every project; members see the projects they own.
pub fn can_see_project(actor: &Actor, project: &Project) -> bool {
    actor.is_admin() || project.owner_id == actor.user_id
}

pub async fn project(db: &Db, actor: &Actor, id: Uuid) -> AppResult<Project> {
    match db::projects::find(db, id).await? {
        Some(project) if can_see_project(actor, &project) => Ok(project),
        _ => Err(AppError::not_found("project")),
    }
}
