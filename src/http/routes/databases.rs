//! One-click databases: `/databases` (a team's, created from a kind and a name), their
//! runtime control, logs and connection, and `/databases/{id}/attachments/{project_id}`. See
//! `storage::databases` for how one runs.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::access::{self, Action};
use crate::db::{self, databases::Database};
use crate::http::access::{Configure, DatabaseFor, Deploy, Read};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult, FieldCheck};
use crate::model::DatabaseKind;
use crate::state::AppState;
use crate::storage::databases::connection;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/databases", web::get().to(list_databases))
        .route("/databases", web::post().to(create_database))
        .route("/databases/{id}", web::get().to(get_database))
        .route("/databases/{id}", web::patch().to(update_database))
        .route("/databases/{id}", web::delete().to(delete_database))
        .route("/databases/{id}/start", web::post().to(start_database))
        .route("/databases/{id}/stop", web::post().to(stop_database))
        .route("/databases/{id}/restart", web::post().to(restart_database))
        .route("/databases/{id}/logs", web::get().to(database_logs))
        .route("/databases/{id}/metrics", web::get().to(database_metrics))
        .route(
            "/databases/{id}/connection",
            web::get().to(database_connection),
        )
        .route(
            "/databases/{id}/attachments/{project_id}",
            web::post().to(attach_database),
        )
        .route(
            "/databases/{id}/attachments/{project_id}",
            web::delete().to(detach_database),
        );
}

/// How an attached app connects; the password is masked here (`/connection` shows it).
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    /// The database's name on an attached project's network.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// With the password masked.
    pub url: String,
    /// The variables an attached project's deployments get (all secret).
    pub env: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseView {
    pub id: Uuid,
    pub name: String,
    /// `postgres`, `mysql`, `mariadb` or `redis`.
    pub kind: String,
    pub version: String,
    pub image: String,
    /// `starting`, `running`, `stopped` or `failed`.
    pub status: String,
    /// Why it failed.
    pub message: Option<String>,
    pub team_id: Option<Uuid>,
    /// Published on this host's addresses (admins only); none by default.
    pub public_port: Option<i32>,
    pub memory_limit_mb: i32,
    /// Projects that reach it and get its variables.
    pub attached_project_ids: Vec<Uuid>,
    pub connection: ConnectionView,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn view(state: &AppState, d: Database) -> AppResult<DatabaseView> {
    let c = connection(&state.sealer, &d)?;
    let mask = "********";
    let url = c.url.replace(&c.credentials.password, mask);
    let env = crate::storage::databases::connection_env(&state.sealer, &d)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    Ok(DatabaseView {
        attached_project_ids: db::databases::attached_projects(&state.db, d.id).await?,
        connection: ConnectionView {
            host: c.host,
            port: c.port,
            user: c.credentials.user,
            database: c.credentials.database,
            url,
            env,
        },
        id: d.id,
        name: d.name,
        kind: d.kind.to_string(),
        version: d.version,
        image: d.image,
        status: d.status.to_string(),
        message: d.message,
        team_id: d.team_id,
        public_port: d.public_port,
        memory_limit_mb: d.memory_limit_mb,
        created_at: d.created_at,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDatabase {
    /// `postgres`, `mysql`, `mariadb` or `redis`.
    pub kind: String,
    /// Lowercase letters, digits and `-`: its host name for attached apps, e.g. `main-db`.
    pub name: String,
    /// The image's version (`[databases.versions]` when none).
    pub version: Option<String>,
    /// The caller's personal team when none.
    pub team_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDatabase {
    /// Publish on this port of every address of the host (instance admins); null to stop.
    pub public_port: Option<Option<u16>>,
}

#[derive(Deserialize, IntoParams)]
pub struct LogsQuery {
    /// How many of the last lines (at most 1000; 200 when not given).
    pub lines: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Secret {
    /// The connection URL with its password.
    pub url: String,
    pub password: String,
}

#[utoipa::path(get, path = "/api/v1/databases", tag = "databases",
    responses((status = 200, body = [DatabaseView])), security(("bearer" = [])))]
pub async fn list_databases(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<DatabaseView>>> {
    if actor.token.as_ref().is_some_and(|t| t.projects.is_some()) {
        return Ok(web::Json(Vec::new()));
    }
    let visible = access::visible(&state.db, &actor).await?;
    let mut out = Vec::new();
    for d in db::databases::list(&state.db, visible.teams).await? {
        out.push(view(&state, d).await?);
    }
    Ok(web::Json(out))
}

/// Creates a database; it answers `starting` and comes up in the background (`running`, or
/// `failed` with the reason).
#[utoipa::path(post, path = "/api/v1/databases", tag = "databases", request_body = CreateDatabase,
    responses((status = 201, body = DatabaseView), (status = 404, description = "no such team"), (status = 409, description = "the name is taken in the team"), (status = 422)),
    security(("bearer" = [])))]
pub async fn create_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<CreateDatabase>,
) -> AppResult<HttpResponse> {
    access::personal(&actor)?;
    let body = body.parse()?;
    let kind = DatabaseKind::parse(&body.kind).ok_or_else(|| {
        AppError::validation("kind", "must be one of postgres, mysql, mariadb, redis")
    })?;
    validate::slug(&body.name).field("name")?;
    let team = match body.team_id {
        Some(team) => {
            access::team(&state.db, &actor, team, Action::CreateProject)
                .await?
                .0
        }
        None => db::teams::personal(&state.db, actor.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("personal team"))?,
    };
    let database = state
        .databases
        .create(
            Some(team.id),
            &body.name,
            kind,
            body.version.as_deref(),
            Some(actor.user_id),
        )
        .await?;
    crate::http::audit::action(&req, "database.create", "database", database.id);
    crate::http::audit::note(&req, |f| f.team = database.team_id);
    Ok(HttpResponse::Created().json(view(&state, database).await?))
}

#[utoipa::path(get, path = "/api/v1/databases/{id}", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 200, body = DatabaseView), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_database(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Read>,
) -> AppResult<web::Json<DatabaseView>> {
    Ok(web::Json(view(&state, database).await?))
}

/// The connection URL and password, for the team's admins.
#[utoipa::path(get, path = "/api/v1/databases/{id}/connection", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 200, body = Secret), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn database_connection(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Configure>,
) -> AppResult<HttpResponse> {
    let c = connection(&state.sealer, &database)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(Secret {
            url: c.url,
            password: c.credentials.password,
        }))
}

/// Publishes the database on a port of the host, or stops publishing it (instance admins); the
/// container is made again, its data kept.
#[utoipa::path(patch, path = "/api/v1/databases/{id}", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")), request_body = UpdateDatabase,
    responses((status = 200, body = DatabaseView), (status = 403), (status = 404), (status = 422)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn update_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(actor, database, _need): DatabaseFor<Configure>,
    body: JsonBody<UpdateDatabase>,
) -> AppResult<web::Json<DatabaseView>> {
    let body = body.parse()?;
    let mut database = database;
    if let Some(port) = body.public_port {
        access::instance_admin(&actor)?;
        database = state.databases.set_public_port(database, port).await?;
    }
    crate::http::audit::action(&req, "database.update", "database", database.id);
    Ok(web::Json(view(&state, database).await?))
}

/// Deletes the database, its container and its data, for good.
#[utoipa::path(delete, path = "/api/v1/databases/{id}", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn delete_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(_actor, database, _need): DatabaseFor<Configure>,
) -> AppResult<HttpResponse> {
    state.databases.delete(&database).await?;
    crate::http::audit::action(&req, "database.delete", "database", database.id);
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/databases/{id}/start", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 202, body = DatabaseView), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn start_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(_actor, database, _need): DatabaseFor<Deploy>,
) -> AppResult<HttpResponse> {
    let id = database.id;
    state.databases.start(database).await?;
    crate::http::audit::action(&req, "database.start", "database", id);
    accepted(&state, id).await
}

#[utoipa::path(post, path = "/api/v1/databases/{id}/stop", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 202, body = DatabaseView), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn stop_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(_actor, database, _need): DatabaseFor<Deploy>,
) -> AppResult<HttpResponse> {
    state.databases.stop(&database).await?;
    crate::http::audit::action(&req, "database.stop", "database", database.id);
    accepted(&state, database.id).await
}

/// Stops it and starts it again (a new container on the same data).
#[utoipa::path(post, path = "/api/v1/databases/{id}/restart", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id")),
    responses((status = 202, body = DatabaseView), (status = 404)), security(("bearer" = ["role:member", "scope:deploy"])))]
pub async fn restart_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(_actor, database, _need): DatabaseFor<Deploy>,
) -> AppResult<HttpResponse> {
    let id = database.id;
    state.databases.stop(&database).await?;
    state.databases.start(database).await?;
    crate::http::audit::action(&req, "database.restart", "database", id);
    accepted(&state, id).await
}

async fn accepted(state: &AppState, id: Uuid) -> AppResult<HttpResponse> {
    let database = db::databases::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("database"))?;
    Ok(HttpResponse::Accepted().json(view(state, database).await?))
}

/// The database's last output lines.
#[utoipa::path(get, path = "/api/v1/databases/{id}/logs", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id"), LogsQuery),
    responses((status = 200, body = [String]), (status = 404)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn database_logs(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Read>,
    query: web::Query<LogsQuery>,
) -> AppResult<web::Json<Vec<String>>> {
    let lines = query.lines.unwrap_or(200).clamp(1, 1000);
    let lines = state.databases.logs(&database, lines).await?;
    // Its own password never shows, whoever reads.
    let password = connection(&state.sealer, &database)?.credentials.password;
    Ok(web::Json(
        lines
            .into_iter()
            .map(|l| l.replace(&password, "********"))
            .collect(),
    ))
}

/// A database's use now and over a range, like an app's metrics.
#[derive(Serialize, ToSchema)]
pub struct DatabaseMetrics {
    /// Whether it runs: when not, the fields of its use now are null (its history stays).
    pub running: bool,
    /// Now, of one CPU (200 is two busy CPUs); null when it could not be measured.
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    pub block_read_bytes: Option<u64>,
    pub block_write_bytes: Option<u64>,
    pub restart_count: Option<i64>,
    /// The collector's samples over `from`..`to` (default the last hour), as for an app.
    #[serde(flatten)]
    pub series: crate::http::routes::metrics::MetricsView,
}

/// The database's CPU, memory, network and disk use now (measured over half a second) and its
/// samples over a range (`from`, `to`, `step` as for a project's metrics).
#[utoipa::path(get, path = "/api/v1/databases/{id}/metrics", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id"), crate::http::routes::metrics::MetricsQuery),
    responses((status = 200, body = DatabaseMetrics), (status = 404), (status = 422)), security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn database_metrics(
    state: web::Data<AppState>,
    DatabaseFor(_actor, database, _need): DatabaseFor<Read>,
    query: web::Query<crate::http::routes::metrics::MetricsQuery>,
) -> AppResult<web::Json<DatabaseMetrics>> {
    let series = crate::http::routes::metrics::series(&state, database.id, &query).await?;
    let now = state.databases.usage(&database).await?;
    let cpu = now.and_then(|(_, cpu)| cpu);
    let reading = now.map(|(r, _)| r);
    Ok(web::Json(DatabaseMetrics {
        running: reading.is_some(),
        cpu_percent: cpu.map(|c| (c * 100.0).round() / 100.0),
        memory_bytes: reading.as_ref().map(|r| r.memory_bytes),
        memory_limit_bytes: reading.as_ref().map(|r| r.memory_limit_bytes),
        net_rx_bytes: reading.as_ref().map(|r| r.net_rx_bytes),
        net_tx_bytes: reading.as_ref().map(|r| r.net_tx_bytes),
        block_read_bytes: reading.as_ref().map(|r| r.block_read_bytes),
        block_write_bytes: reading.as_ref().map(|r| r.block_write_bytes),
        restart_count: reading.as_ref().map(|r| r.restart_count),
        series,
    }))
}

/// The project `{project_id}` of the path, which the caller may configure.
async fn project_of(
    state: &AppState,
    req: &HttpRequest,
    actor: &crate::auth::Actor,
) -> AppResult<db::projects::Project> {
    let raw = req.match_info().get("project_id").unwrap_or_default();
    let id: Uuid = raw
        .parse()
        .map_err(|_| AppError::BadRequest(format!("invalid project id in path: '{raw}'")))?;
    Ok(access::project(&state.db, actor, id, Action::Configure).await?)
}

/// Attaches the database to a project of its team: the project reaches it by its name, and
/// its next deployment gets the connection variables.
#[utoipa::path(post, path = "/api/v1/databases/{id}/attachments/{project_id}", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id"), ("project_id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 204), (status = 404), (status = 409, description = "another team's project, or the project gets that variable from another database")),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn attach_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(actor, database, _need): DatabaseFor<Configure>,
) -> AppResult<HttpResponse> {
    let project = project_of(&state, &req, &actor).await?;
    state.databases.attach(&database, &project).await?;
    crate::http::audit::action(&req, "database.attach", "database", database.id);
    crate::http::audit::note(&req, |f| f.project = Some(project.id));
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/api/v1/databases/{id}/attachments/{project_id}", tag = "databases", params(("id" = uuid::Uuid, Path, description = "the database id"), ("project_id" = uuid::Uuid, Path, description = "the project id")),
    responses((status = 204), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn detach_database(
    state: web::Data<AppState>,
    req: HttpRequest,
    DatabaseFor(actor, database, _need): DatabaseFor<Configure>,
) -> AppResult<HttpResponse> {
    let project = project_of(&state, &req, &actor).await?;
    if !state.databases.detach(&database, project.id).await? {
        return Err(AppError::not_found("attachment"));
    }
    crate::http::audit::action(&req, "database.detach", "database", database.id);
    crate::http::audit::note(&req, |f| f.project = Some(project.id));
    Ok(HttpResponse::NoContent().finish())
}
