//! Projects and the deployment summary shown with them (status, live deployment).

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use super::entities::deployments::{self, Entity as Deployments};
use super::entities::projects::{self, Entity as Projects};
use super::{Db, new_id, now};

pub use projects::Model as Project;

/// The user-settable fields of a project, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    pub slug: String,
    pub git_url: String,
    pub branch: String,
    pub dockerfile: String,
    pub port: Option<i32>,
    pub health_path: String,
    pub health_timeout_secs: i32,
    pub memory_limit_mb: Option<i64>,
    pub cpu_limit_millis: Option<i32>,
    /// `auto`, `dockerfile` or `static`.
    pub build_type: crate::model::BuildType,
    /// For `static`: the directory of the built image that holds the site; for `auto`: the
    /// directory of the build (relative to the app's root) to serve as a site.
    pub static_dir: Option<String>,
    /// For `auto`: the build plan's overrides (`root_dir`, the three commands).
    pub plan: PlanOverrides,
    /// How many copies of the app run (Swarm; plain Docker runs one).
    pub replicas: i32,
    /// Node labels every replica's node must carry (Swarm).
    pub placement: std::collections::BTreeMap<String, String>,
    /// Whether an instance admin set `git_url` (only then may a fetch reach private networks).
    pub git_url_trusted: bool,
}

impl Settings {
    /// A project named `name` building `git_url`'s `main` branch with everything else as a
    /// bare `POST /projects` leaves it: `auto` (its `Dockerfile`, else the build plan), health
    /// check `GET /` for up to 60 s, no limits, one replica anywhere.
    pub fn new(name: &str, git_url: &str) -> Self {
        Self {
            name: name.to_string(),
            slug: crate::validate::slugify(name),
            git_url: git_url.to_string(),
            branch: "main".into(),
            dockerfile: "Dockerfile".into(),
            port: None,
            health_path: "/".into(),
            health_timeout_secs: 60,
            memory_limit_mb: None,
            cpu_limit_millis: None,
            build_type: crate::model::BuildType::Auto,
            static_dir: None,
            plan: PlanOverrides::default(),
            replicas: 1,
            placement: Default::default(),
            git_url_trusted: false,
        }
    }

    /// The same, with the git URL marked as set by an instance admin (trusted to reach private
    /// networks, as the benches' local git servers are).
    pub fn set_by_admin(self) -> Self {
        Self {
            git_url_trusted: true,
            ..self
        }
    }

    pub fn of(p: &Project) -> Self {
        Self {
            name: p.name.clone(),
            slug: p.slug.clone(),
            git_url: p.git_url.clone(),
            branch: p.branch.clone(),
            dockerfile: p.dockerfile.clone(),
            port: p.port,
            health_path: p.health_path.clone(),
            health_timeout_secs: p.health_timeout_secs,
            memory_limit_mb: p.memory_limit_mb,
            cpu_limit_millis: p.cpu_limit_millis,
            build_type: p.build_type,
            static_dir: p.static_dir.clone(),
            plan: PlanOverrides {
                root_dir: p.root_dir.clone(),
                install_command: p.install_command.clone(),
                build_command: p.build_command.clone(),
                start_command: p.start_command.clone(),
            },
            replicas: p.replicas,
            placement: placement_of(p),
            git_url_trusted: p.git_url_trusted,
        }
    }
}

/// What a project says over its build plan (for `build_type: "auto"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOverrides {
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
}

/// A project's placement labels (empty when it has none or the stored text is unreadable).
pub fn placement_of(p: &Project) -> std::collections::BTreeMap<String, String> {
    p.placement
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

fn placement_text(labels: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::to_string(labels).unwrap_or_default())
}

/// Creates a project in its owner's personal team.
pub async fn insert(db: &Db, owner_id: Uuid, s: Settings) -> Result<Project, DbErr> {
    let team = super::teams::personal(db, owner_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("the personal team of user {owner_id}")))?;
    insert_in(db, owner_id, team.id, s).await
}

/// Creates a project in a team.
pub async fn insert_in(
    db: &Db,
    owner_id: Uuid,
    team_id: Uuid,
    s: Settings,
) -> Result<Project, DbErr> {
    let at = now();
    projects::ActiveModel {
        id: Set(new_id()),
        owner_id: Set(owner_id),
        team_id: Set(Some(team_id)),
        git_account_id: Set(None),
        name: Set(s.name),
        slug: Set(s.slug),
        git_url: Set(s.git_url),
        branch: Set(s.branch),
        dockerfile: Set(s.dockerfile),
        port: Set(s.port),
        health_path: Set(s.health_path),
        health_timeout_secs: Set(s.health_timeout_secs),
        memory_limit_mb: Set(s.memory_limit_mb),
        cpu_limit_millis: Set(s.cpu_limit_millis),
        webhook_secret_sealed: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
        build_type: Set(s.build_type),
        static_dir: Set(s.static_dir),
        github_repo: Set(None),
        github_hook_id: Set(None),
        replicas: Set(s.replicas),
        placement: Set(placement_text(&s.placement)),
        github_origin: Set(None),
        git_url_trusted: Set(s.git_url_trusted),
        root_dir: Set(s.plan.root_dir),
        install_command: Set(s.plan.install_command),
        build_command: Set(s.plan.build_command),
        start_command: Set(s.plan.start_command),
        preview_of: Set(None),
        pr_number: Set(None),
        previews_enabled: Set(false),
        previews_ttl_days: Set(7),
        previews_max: Set(5),
        previews_auth_hash: Set(None),
    }
    .insert(db)
    .await
}

pub async fn update(db: &Db, project: Project, s: Settings) -> Result<Project, DbErr> {
    let mut active = project.into_active_model();
    active.name = Set(s.name);
    active.slug = Set(s.slug);
    active.git_url = Set(s.git_url);
    active.branch = Set(s.branch);
    active.dockerfile = Set(s.dockerfile);
    active.port = Set(s.port);
    active.health_path = Set(s.health_path);
    active.health_timeout_secs = Set(s.health_timeout_secs);
    active.memory_limit_mb = Set(s.memory_limit_mb);
    active.cpu_limit_millis = Set(s.cpu_limit_millis);
    active.build_type = Set(s.build_type);
    active.static_dir = Set(s.static_dir);
    active.replicas = Set(s.replicas);
    active.placement = Set(placement_text(&s.placement));
    active.git_url_trusted = Set(s.git_url_trusted);
    active.root_dir = Set(s.plan.root_dir);
    active.install_command = Set(s.plan.install_command);
    active.build_command = Set(s.plan.build_command);
    active.start_command = Set(s.plan.start_command);
    active.updated_at = Set(now());
    active.update(db).await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Project>, DbErr> {
    Projects::find_by_id(id).one(db).await
}

/// Every project, previews of pull requests included (what the proxy routes).
pub async fn all(db: &Db) -> Result<Vec<Project>, DbErr> {
    Projects::find()
        .order_by_asc(projects::Column::CreatedAt)
        .all(db)
        .await
}

/// All projects (`owner: None`, for admins) or one owner's, oldest first; previews of pull
/// requests are listed with their project, not here.
pub async fn list(db: &Db, owner: Option<Uuid>) -> Result<Vec<Project>, DbErr> {
    let mut query = Projects::find().filter(projects::Column::PreviewOf.is_null());
    if let Some(owner) = owner {
        query = query.filter(projects::Column::OwnerId.eq(owner));
    }
    query
        .order_by_asc(projects::Column::CreatedAt)
        .all(db)
        .await
}

/// The projects of these teams (`None`: every project), oldest first (not previews).
pub async fn list_in_teams(db: &Db, teams: Option<Vec<Uuid>>) -> Result<Vec<Project>, DbErr> {
    let mut query = Projects::find().filter(projects::Column::PreviewOf.is_null());
    if let Some(teams) = teams {
        query = query.filter(projects::Column::TeamId.is_in(teams));
    }
    query
        .order_by_asc(projects::Column::CreatedAt)
        .all(db)
        .await
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    use sea_orm::TransactionTrait;
    let txn = db.begin().await?;
    super::metrics::delete_subject(&txn, id).await?;
    Projects::delete_by_id(id).exec(&txn).await?;
    txn.commit().await
}

/// What the dashboard shows beside a project: its newest deployment's status and the live one.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub latest_status: Option<String>,
    pub live_deployment: Option<Uuid>,
    /// The newest deployment, whatever its status.
    pub latest: Option<super::deployments::Deployment>,
}

/// Summaries for many projects in one query: each project's newest deployment and its live one.
pub async fn summaries(db: &Db, ids: &[Uuid]) -> Result<HashMap<Uuid, Summary>, DbErr> {
    let mut out: HashMap<Uuid, Summary> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let newest_per_project = Query::select()
        .expr(Expr::col(("d2", deployments::Column::CreatedAt)).max())
        .from_as(Deployments, "d2")
        .and_where(
            Expr::col(("d2", deployments::Column::ProjectId))
                .equals((Deployments, deployments::Column::ProjectId)),
        )
        .to_owned();
    let rows = Deployments::find()
        .filter(deployments::Column::ProjectId.is_in(ids.iter().copied()))
        .filter(
            Condition::any()
                .add(deployments::Column::CreatedAt.in_subquery(newest_per_project))
                .add(deployments::Column::Status.eq("live")),
        )
        .all(db)
        .await?;
    let mut newest: HashMap<Uuid, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for d in rows {
        let summary = out.entry(d.project_id).or_default();
        if d.status == crate::model::DeploymentStatus::Live {
            summary.live_deployment = Some(d.id);
        }
        if newest
            .get(&d.project_id)
            .is_none_or(|at| d.created_at > *at)
        {
            newest.insert(d.project_id, d.created_at);
            summary.latest_status = Some(d.status.to_string());
            summary.latest = Some(d);
        }
    }
    Ok(out)
}

/// How a project is tied to GitHub: the account whose token fetches it, the repository
/// (`owner/name`) commit statuses go to, and the push webhook shard created there.
#[derive(Debug, Clone, Default)]
pub struct GithubLink {
    pub account: Option<Uuid>,
    pub repo: Option<String>,
    pub hook_id: Option<i64>,
    /// The origin the account's token may be sent to (the clone URL's).
    pub origin: Option<String>,
}

/// Sets (or with `GithubLink::default()` clears) a project's tie to GitHub.
pub async fn set_github(db: &Db, id: Uuid, link: GithubLink) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    Projects::update_many()
        .col_expr(projects::Column::GitAccountId, Expr::value(link.account))
        .col_expr(projects::Column::GithubRepo, Expr::value(link.repo))
        .col_expr(projects::Column::GithubHookId, Expr::value(link.hook_id))
        .col_expr(projects::Column::GithubOrigin, Expr::value(link.origin))
        .filter(projects::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A disconnected GitHub account no longer fetches anything: its projects keep their
/// repository but lose the account.
pub async fn detach_git_account(db: &Db, account: Uuid) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    Projects::update_many()
        .col_expr(
            projects::Column::GitAccountId,
            Expr::value(Option::<Uuid>::None),
        )
        .filter(projects::Column::GitAccountId.eq(account))
        .exec(db)
        .await?;
    Ok(())
}

/// A user who connects GitHub again gets their imported projects back on the new account.
pub async fn attach_git_account(db: &Db, owner: Uuid, account: Uuid) -> Result<(), DbErr> {
    use sea_orm::sea_query::Expr;
    Projects::update_many()
        .col_expr(projects::Column::GitAccountId, Expr::value(account))
        .filter(projects::Column::OwnerId.eq(owner))
        .filter(projects::Column::GithubRepo.is_not_null())
        .filter(projects::Column::GitAccountId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// How many projects `owner` created (over every team).
pub async fn count_owned(db: &Db, owner: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Projects::find()
        .filter(projects::Column::OwnerId.eq(owner))
        .filter(projects::Column::PreviewOf.is_null())
        .count(db)
        .await
}

/// The ids of a team's projects.
pub async fn ids_in_team(db: &Db, team: Uuid) -> Result<Vec<Uuid>, DbErr> {
    use sea_orm::QuerySelect;
    Projects::find()
        .select_only()
        .column(projects::Column::Id)
        .filter(projects::Column::TeamId.eq(team))
        .into_tuple()
        .all(db)
        .await
}
