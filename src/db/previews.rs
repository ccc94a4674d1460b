//! Pull-request previews (see the migration `previews`): one row per pull request of a
//! project, and the child project that serves its build.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    Set,
};
use uuid::Uuid;

use super::Db;
use super::entities::previews::{self, Column as C, Entity as Previews};
use super::entities::projects::{self, Entity as Projects};
use super::projects::Project;
use crate::model::PreviewState;

pub use previews::Model as Preview;

/// A pull request as its delivery describes it.
pub struct PullRequest {
    pub number: i32,
    pub title: String,
    pub author: Option<String>,
    pub head_sha: String,
    pub head_ref: String,
    pub head_repo: String,
    pub fork: bool,
}

pub async fn find(db: &Db, project: Uuid, number: i32) -> Result<Option<Preview>, DbErr> {
    Previews::find()
        .filter(C::ProjectId.eq(project))
        .filter(C::PrNumber.eq(number))
        .one(db)
        .await
}

pub async fn by_id(db: &Db, id: Uuid) -> Result<Option<Preview>, DbErr> {
    Previews::find_by_id(id).one(db).await
}

/// A project's previews, newest pull request first.
pub async fn of_project(db: &Db, project: Uuid) -> Result<Vec<Preview>, DbErr> {
    Previews::find()
        .filter(C::ProjectId.eq(project))
        .order_by_desc(C::PrNumber)
        .all(db)
        .await
}

/// The preview whose newest deployment is `deployment`.
pub async fn find_by_deployment(db: &Db, deployment: Uuid) -> Result<Option<Preview>, DbErr> {
    Previews::find()
        .filter(C::DeploymentId.eq(deployment))
        .one(db)
        .await
}

/// Previews not closed, of every project (the reconciler).
pub async fn open(db: &Db) -> Result<Vec<Preview>, DbErr> {
    Previews::find()
        .filter(C::State.ne(PreviewState::Closed))
        .all(db)
        .await
}

/// The preview of the child project `child`, if it is one.
pub async fn of_child(db: &Db, child: Uuid) -> Result<Option<Preview>, DbErr> {
    Previews::find()
        .filter(C::PreviewProjectId.eq(child))
        .one(db)
        .await
}

/// Records a new pull request, or its new head; the row.
pub async fn upsert(db: &Db, project: Uuid, pr: PullRequest) -> Result<Preview, DbErr> {
    let now = Utc::now();
    if let Some(existing) = find(db, project, pr.number).await? {
        let reopened = existing.state == PreviewState::Closed;
        let mut row = existing.into_active_model();
        row.title = Set(pr.title);
        row.author = Set(pr.author);
        row.head_sha = Set(pr.head_sha);
        row.head_ref = Set(pr.head_ref);
        row.head_repo = Set(pr.head_repo);
        row.fork = Set(pr.fork);
        row.updated_at = Set(now);
        if reopened {
            row.closed_at = Set(None);
            row.opened_at = Set(now);
            row.approved_sha = Set(None);
        }
        return row.update(db).await;
    }
    previews::ActiveModel {
        id: Set(super::new_id()),
        project_id: Set(project),
        pr_number: Set(pr.number),
        preview_project_id: Set(None),
        title: Set(pr.title),
        author: Set(pr.author),
        head_sha: Set(pr.head_sha),
        head_ref: Set(pr.head_ref),
        head_repo: Set(pr.head_repo),
        fork: Set(pr.fork),
        state: Set(PreviewState::AwaitingApproval),
        approved_sha: Set(None),
        comment_id: Set(None),
        gh_deployment_id: Set(None),
        deployment_id: Set(None),
        note: Set(None),
        opened_at: Set(now),
        updated_at: Set(now),
        closed_at: Set(None),
    }
    .insert(db)
    .await
}

/// What changes about a preview; `None` leaves a field alone.
#[derive(Default)]
pub struct Change {
    pub state: Option<PreviewState>,
    pub note: Option<Option<String>>,
    pub approved_sha: Option<Option<String>>,
    pub preview_project_id: Option<Option<Uuid>>,
    pub deployment_id: Option<Option<Uuid>>,
    pub comment_id: Option<Option<i64>>,
    pub gh_deployment_id: Option<Option<i64>>,
    pub closed_at: Option<Option<DateTime<Utc>>>,
}

pub async fn change(db: &Db, preview: Preview, c: Change) -> Result<Preview, DbErr> {
    let mut row = preview.into_active_model();
    if let Some(v) = c.state {
        row.state = Set(v);
    }
    if let Some(v) = c.note {
        row.note = Set(v);
    }
    if let Some(v) = c.approved_sha {
        row.approved_sha = Set(v);
    }
    if let Some(v) = c.preview_project_id {
        row.preview_project_id = Set(v);
    }
    if let Some(v) = c.deployment_id {
        row.deployment_id = Set(v);
    }
    if let Some(v) = c.comment_id {
        row.comment_id = Set(v);
    }
    if let Some(v) = c.gh_deployment_id {
        row.gh_deployment_id = Set(v);
    }
    if let Some(v) = c.closed_at {
        row.closed_at = Set(v);
    }
    row.updated_at = Set(Utc::now());
    row.update(db).await
}

/// The child projects of `parent` (its previews' builds).
pub async fn children(db: &Db, parent: Uuid) -> Result<Vec<Project>, DbErr> {
    Projects::find()
        .filter(projects::Column::PreviewOf.eq(parent))
        .all(db)
        .await
}

/// Every child project (the reconciler looks for ones without an open preview).
pub async fn all_children(db: &Db) -> Result<Vec<Project>, DbErr> {
    Projects::find()
        .filter(projects::Column::PreviewOf.is_not_null())
        .all(db)
        .await
}

/// What a child project differs in from its parent.
pub struct Child {
    pub slug: String,
    pub number: i32,
    pub memory_limit_mb: Option<i64>,
    pub cpu_limit_millis: Option<i32>,
}

/// Creates the child project serving a preview of `parent`: the same repository, build and
/// GitHub link, its own slug, one replica, the limits given.
pub async fn insert_child(db: &Db, parent: &Project, child: Child) -> Result<Project, DbErr> {
    let at = Utc::now();
    // Every column of the parent's row, as values to insert.
    let mut row = parent.clone().into_active_model().reset_all();
    row.id = Set(super::new_id());
    row.name = Set(format!("{} #{}", parent.name, child.number));
    row.slug = Set(child.slug);
    row.preview_of = Set(Some(parent.id));
    row.pr_number = Set(Some(child.number));
    row.memory_limit_mb = Set(child.memory_limit_mb);
    row.cpu_limit_millis = Set(child.cpu_limit_millis);
    row.replicas = Set(1);
    row.placement = Set(None);
    row.webhook_secret_sealed = Set(None);
    row.github_hook_id = Set(None);
    row.previews_enabled = Set(false);
    row.created_at = Set(at);
    row.updated_at = Set(at);
    row.insert(db).await
}

/// Sets (or with `None` clears) basic auth on a project's previews, its children included.
pub async fn set_auth(db: &Db, project: Uuid, hash: Option<String>) -> Result<(), DbErr> {
    use sea_orm::Condition;
    use sea_orm::sea_query::Expr;
    Projects::update_many()
        .col_expr(projects::Column::PreviewsAuthHash, Expr::value(hash))
        .filter(
            Condition::any()
                .add(projects::Column::Id.eq(project))
                .add(projects::Column::PreviewOf.eq(project)),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Sets a project's preview settings.
pub async fn set_settings(
    db: &Db,
    project: Project,
    enabled: bool,
    ttl_days: i32,
    max: i32,
) -> Result<Project, DbErr> {
    let mut row = project.into_active_model();
    row.previews_enabled = Set(enabled);
    row.previews_ttl_days = Set(ttl_days);
    row.previews_max = Set(max);
    row.updated_at = Set(Utc::now());
    row.update(db).await
}
