//! `/projects`: create, list, read, update and delete projects. Every id goes through an
//! `http::access` extractor, so a project of another team is a 404.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{self, Action};
use crate::auth::Actor;
use crate::db::{
    self,
    projects::{Project, Settings},
};
use crate::http::access::{Configure, Own, ProjectFor, Read};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::model::BuildType;
use crate::state::AppState;

pub use super::project_view::ProjectView;
pub(crate) use super::project_view::created_view;
use super::project_view::{deployers, one, view};
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects", web::get().to(list_projects))
        .route("/projects", web::post().to(create_project))
        .route("/projects/{id}", web::get().to(get_project))
        .route("/projects/{id}", web::patch().to(update_project))
        .route("/projects/{id}", web::delete().to(delete_project));
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// The team it belongs to; default: the caller's personal team.
    pub team_id: Option<Uuid>,
    pub git_url: String,
    /// Default `main`.
    pub branch: Option<String>,
    /// Path of the Dockerfile in the repository; default `Dockerfile`.
    pub dockerfile: Option<String>,
    /// Port the app listens on; default: the image's EXPOSE, else 8080.
    pub port: Option<i32>,
    /// Default `/`.
    pub health_path: Option<String>,
    /// Default 60.
    pub health_timeout_secs: Option<i32>,
    pub memory_limit_mb: Option<i64>,
    pub cpu_limit_millis: Option<i32>,
    /// `auto` (default: the repository's Dockerfile if it has one, else the build plan),
    /// `dockerfile` or `static`.
    pub build_type: Option<String>,
    /// Required for `static`: the absolute directory in the built image with the site. For
    /// `auto`: the directory of the build to serve as a site (e.g. `dist`).
    pub static_dir: Option<String>,
    /// For `auto`: the repository's subdirectory the app lives in.
    pub root_dir: Option<String>,
    /// For `auto`: replace the plan's install, build or start command.
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
    /// Default 1 (Swarm runtime).
    pub replicas: Option<i32>,
    /// Node labels to run on (Swarm runtime); default none.
    #[schema(value_type = Option<Object>)]
    pub placement: Option<std::collections::BTreeMap<String, String>>,
}

/// A PATCH body: absent fields stay, `null` clears the nullable ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    pub name: Option<String>,
    pub git_url: Option<String>,
    pub branch: Option<String>,
    pub dockerfile: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub port: Option<Option<i32>>,
    pub health_path: Option<String>,
    pub health_timeout_secs: Option<i32>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub memory_limit_mb: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub cpu_limit_millis: Option<Option<i32>>,
    pub build_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub static_dir: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub root_dir: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub install_command: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub build_command: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub start_command: Option<Option<String>>,
    pub replicas: Option<i32>,
    /// Replaces the labels; `{}` or `null` clears them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub placement: Option<Option<std::collections::BTreeMap<String, String>>>,
    /// Pull-request previews; turning them off removes every preview.
    pub previews: Option<super::project_view::PreviewSettingsInput>,
}

/// Tells `"field": null` (Some(None)) from an absent field (None).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The most copies of one app shard runs.
const MAX_REPLICAS: i32 = 32;

/// Checks every field of a project's settings, reporting the first bad one as a 422.
fn check(state: &AppState, s: &Settings) -> AppResult<()> {
    validate::project_name(&s.name).field("name")?;
    validate::git_url(&s.git_url, state.config.git.allow_local_sources).field("git_url")?;
    validate::branch(&s.branch).field("branch")?;
    validate::dockerfile_path(&s.dockerfile).field("dockerfile")?;
    if let Some(port) = s.port
        && !(1..=65535).contains(&port)
    {
        return Err(AppError::validation("port", "must be between 1 and 65535"));
    }
    validate::health_path(&s.health_path).field("health_path")?;
    match (s.build_type, &s.static_dir) {
        (BuildType::Dockerfile, _) => {}
        (BuildType::Auto, dir) => {
            let plan = &s.plan;
            let fields = [
                ("static_dir", dir),
                ("root_dir", &plan.root_dir),
                ("install_command", &plan.install_command),
                ("build_command", &plan.build_command),
                ("start_command", &plan.start_command),
            ];
            for (field, value) in fields {
                if let Some(value) = value {
                    crate::build::check_override(field, value).field(field)?;
                }
            }
            if dir.is_some() && plan.start_command.is_some() {
                return Err(AppError::validation(
                    "start_command",
                    "a site (static_dir) has no start command: set one or the other",
                ));
            }
        }
        (BuildType::Static, Some(dir)) => validate::static_dir(dir).field("static_dir")?,
        (BuildType::Static, None) => {
            return Err(AppError::validation(
                "static_dir",
                "is required for a static site (the directory of the built image to serve)",
            ));
        }
    }
    if !(1..=MAX_REPLICAS).contains(&s.replicas) {
        return Err(AppError::validation(
            "replicas",
            format!("must be between 1 and {MAX_REPLICAS}"),
        ));
    }
    validate::placement(&s.placement).field("placement")?;
    if !(1..=3600).contains(&s.health_timeout_secs) {
        return Err(AppError::validation(
            "health_timeout_secs",
            "must be between 1 and 3600",
        ));
    }
    let limits = &state.config.containers;
    if let Some(mb) = s.memory_limit_mb
        && !(6..=limits.max_memory_mb).contains(&mb)
    {
        return Err(AppError::validation(
            "memory_limit_mb",
            format!(
                "must be between 6 and {} (containers.max_memory_mb)",
                limits.max_memory_mb
            ),
        ));
    }
    if let Some(millis) = s.cpu_limit_millis
        && !(10..=limits.max_cpu_millis).contains(&i64::from(millis))
    {
        return Err(AppError::validation(
            "cpu_limit_millis",
            format!(
                "must be between 10 and {} (containers.max_cpu_millis)",
                limits.max_cpu_millis
            ),
        ));
    }
    Ok(())
}

/// A member's git URL may not point into the host's own networks (see `deploy::source`).
async fn check_source(state: &AppState, actor: &Actor, git_url: &str) -> AppResult<()> {
    if actor.is_admin() || state.config.git.allow_private_networks {
        return Ok(());
    }
    crate::egress::check_saved(git_url)
        .await
        .map_err(|why| AppError::validation("git_url", why.to_string()))
}

fn slug_taken(slug: &str) -> AppError {
    AppError::Conflict(format!(
        "a project with the slug '{slug}' already exists; choose another name"
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this team's projects.
    pub team_id: Option<Uuid>,
}

/// The projects the caller may see (of their teams; every project for instance admins),
/// narrowed by an API token's project list.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ListQuery),
    responses((status = 200, body = [ProjectView])), security(("bearer" = ["scope:read"])))]
pub async fn list_projects(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
    query: web::Query<ListQuery>,
) -> AppResult<web::Json<Vec<ProjectView>>> {
    let visible = access::visible(&state.db, &actor).await?;
    let teams = match (query.team_id, visible.teams.clone()) {
        (Some(team), _) => Some(vec![team]),
        (None, teams) => teams,
    };
    let projects: Vec<Project> = db::projects::list_in_teams(&state.db, teams)
        .await?
        .into_iter()
        .filter(|p| visible.includes(p))
        .collect();
    let ids: Vec<Uuid> = projects.iter().map(|p| p.id).collect();
    let mut summaries = db::projects::summaries(&state.db, &ids).await?;
    let names = deployers(&state, summaries.values()).await?;
    Ok(web::Json(
        projects
            .into_iter()
            .map(|p| {
                let summary = summaries.remove(&p.id).unwrap_or_default();
                view(&state, p, summary, &names)
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = CreateProject,
    responses((status = 201, body = ProjectView), (status = 409, description = "slug taken"), (status = 422), (status = 429, description = "a project quota is used up")), security(("bearer" = [])))]
pub async fn create_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateProject>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let project = create(&state, &req, &actor, body).await?;
    Ok(HttpResponse::Created().json(created_view(&state, project)))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")), responses((status = 200, body = ProjectView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_project(
    state: web::Data<AppState>,
    ProjectFor(_actor, project, _need): ProjectFor<Read>,
) -> AppResult<web::Json<ProjectView>> {
    Ok(web::Json(one(&state, project).await?))
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")), request_body = UpdateProject,
    responses((status = 200, body = ProjectView), (status = 403), (status = 404), (status = 409), (status = 422)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn update_project(
    state: web::Data<AppState>,
    ProjectFor(actor, project, _need): ProjectFor<Configure>,
    body: JsonBody<UpdateProject>,
) -> AppResult<web::Json<ProjectView>> {
    let body = body.parse()?;
    let b = body;
    let mut s = Settings::of(&project);
    if let Some(name) = b.name {
        s.name = name.trim().to_string();
        s.slug = validate::slugify(&s.name);
    }
    if let Some(v) = b.git_url {
        s.git_url = v.trim().to_string();
    }
    if let Some(v) = b.branch {
        s.branch = v;
    }
    if let Some(v) = b.dockerfile {
        s.dockerfile = v;
    }
    if let Some(v) = b.port {
        s.port = v;
    }
    if let Some(v) = b.health_path {
        s.health_path = v;
    }
    if let Some(v) = b.health_timeout_secs {
        s.health_timeout_secs = v;
    }
    if let Some(v) = b.memory_limit_mb {
        s.memory_limit_mb = v;
    }
    if let Some(v) = b.cpu_limit_millis {
        s.cpu_limit_millis = v;
    }
    if let Some(v) = b.build_type {
        s.build_type = build_type(&v)?;
    }
    if let Some(v) = b.static_dir {
        s.static_dir = v;
    }
    let plan = &mut s.plan;
    for (value, slot) in [
        (b.root_dir, &mut plan.root_dir),
        (b.install_command, &mut plan.install_command),
        (b.build_command, &mut plan.build_command),
        (b.start_command, &mut plan.start_command),
    ] {
        if let Some(v) = value {
            *slot = v;
        }
    }
    if let Some(v) = b.replicas {
        s.replicas = v;
    }
    if let Some(v) = b.placement {
        s.placement = v.unwrap_or_default();
    }
    check(&state, &s)?;
    if s.replicas > 1
        && !db::volumes::for_project(&state.db, project.id)
            .await?
            .is_empty()
    {
        return Err(AppError::Conflict(
            "a project with a volume runs one replica (a volume is local to one machine); \
             detach its volumes first"
                .into(),
        ));
    }
    let moved = s.git_url != project.git_url;
    if moved {
        check_source(&state, &actor, &s.git_url).await?;
        s.git_url_trusted = actor.is_admin();
    }
    if let Some(p) = &b.previews {
        super::previews::check_settings(&state, &project, p)?;
    }
    let slug = s.slug.clone();
    let rescale = s.replicas != project.replicas;
    let before = project.clone();
    match db::projects::update(&state.db, project, s).await {
        Ok(updated) => {
            let updated = if moved {
                unbind_credentials(&state, &before, updated).await?
            } else {
                updated
            };
            if rescale {
                state.deployer.rescale(&updated).await?;
            }
            let updated = match b.previews {
                Some(p) => super::previews::apply_settings(&state, updated, p).await?,
                None => updated,
            };
            // A new slug is a new host name; the old one stops answering at once.
            state.proxy.refresh_or_log().await;
            Ok(web::Json(one(&state, updated).await?))
        }
        Err(e) if db::is_unique_violation(&e) => Err(slug_taken(&slug)),
        Err(e) => Err(e.into()),
    }
}

/// A new git URL keeps no credential given for the old one: the project stops being an
/// import of its GitHub repository (its push webhook is removed, its account unlinked), and a
/// `SHARD_GIT_TOKEN` saved for another origin is deleted. The project goes on deploying without
/// credentials until they are given again for the new URL (a public repository just works).
async fn unbind_credentials(
    state: &AppState,
    before: &Project,
    updated: Project,
) -> AppResult<Project> {
    let mut changed = false;
    if before.git_account_id.is_some() || before.github_repo.is_some() {
        if let Some(error) = super::github_repos::remove_hook(state, before).await {
            tracing::warn!(project = %before.id, %error, "the old repository's webhook was not deleted");
        }
        db::projects::set_github(&state.db, before.id, Default::default()).await?;
        changed = true;
    }
    let origin = crate::egress::origin(&updated.git_url);
    let token = db::env_vars::list(&state.db, updated.id)
        .await?
        .into_iter()
        .find(|v| v.key == crate::deploy::env::GIT_TOKEN_VAR);
    if let Some(token) = token {
        let bound = token
            .bound_host
            .clone()
            .or_else(|| crate::egress::origin(&before.git_url));
        if bound != origin {
            db::env_vars::remove(&state.db, token.id).await?;
        }
    }
    if !changed {
        return Ok(updated);
    }
    db::projects::find(&state.db, updated.id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))
}

/// Deletes the project with its containers and images. If Docker cannot be reached the
/// project is kept (409) so nothing is left running without an owner.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 204), (status = 403), (status = 404), (status = 503, description = "Docker unreachable")), security(("bearer" = ["role:owner", "scope:admin"])))]
pub async fn delete_project(
    state: web::Data<AppState>,
    req: HttpRequest,
    ProjectFor(_actor, project, _need): ProjectFor<Own>,
) -> AppResult<HttpResponse> {
    if let Some(error) = super::github_repos::remove_hook(&state, &project).await {
        tracing::warn!(project = %project.id, %error, "the project's GitHub webhook was not deleted");
    }
    state.deployer.delete_project(&project).await?;
    crate::http::audit::action(&req, "project.delete", "project", project.id);
    Ok(HttpResponse::NoContent().finish())
}

/// A build type as the API spells it.
fn build_type(text: &str) -> AppResult<BuildType> {
    BuildType::parse(text).ok_or_else(|| {
        AppError::validation(
            "build_type",
            "must be \"auto\", \"dockerfile\" or \"static\"",
        )
    })
}

/// Creates a project (the body of `POST /projects`, also used by GitHub import).
pub(crate) async fn create(
    state: &AppState,
    req: &HttpRequest,
    actor: &Actor,
    b: CreateProject,
) -> AppResult<Project> {
    let given = Settings::new(b.name.trim(), b.git_url.trim());
    let settings = Settings {
        branch: b.branch.unwrap_or(given.branch),
        dockerfile: b.dockerfile.unwrap_or(given.dockerfile),
        port: b.port,
        health_path: b.health_path.unwrap_or(given.health_path),
        health_timeout_secs: b.health_timeout_secs.unwrap_or(given.health_timeout_secs),
        memory_limit_mb: b.memory_limit_mb,
        cpu_limit_millis: b.cpu_limit_millis,
        build_type: match b.build_type {
            Some(text) => build_type(&text)?,
            None => given.build_type,
        },
        static_dir: b.static_dir,
        plan: db::projects::PlanOverrides {
            root_dir: b.root_dir,
            install_command: b.install_command,
            build_command: b.build_command,
            start_command: b.start_command,
        },
        replicas: b.replicas.unwrap_or(given.replicas),
        placement: b.placement.unwrap_or_default(),
        ..given
    };
    let team = match b.team_id {
        Some(team) => {
            access::team(&state.db, actor, team, Action::CreateProject)
                .await?
                .0
        }
        None => db::teams::personal(&state.db, actor.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("personal team"))?,
    };
    let settings = Settings {
        git_url_trusted: actor.is_admin(),
        ..settings
    };
    check(state, &settings)?;
    crate::http::quotas::project(state, actor, team.id).await?;
    check_source(state, actor, &settings.git_url).await?;
    let slug = settings.slug.clone();
    let project = match db::projects::insert_in(&state.db, actor.user_id, team.id, settings).await {
        Ok(project) => project,
        Err(e) if db::is_unique_violation(&e) => return Err(slug_taken(&slug)),
        Err(e) => return Err(e.into()),
    };
    state.proxy.refresh_or_log().await;
    crate::http::audit::action(req, "project.create", "project", project.id);
    crate::http::audit::note(req, |f| {
        f.project = Some(project.id);
        f.team = project.team_id;
    });
    Ok(project)
}
