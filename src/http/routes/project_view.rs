//! How a project looks through the API: its settings, where it answers, its newest deployment,
//! how it runs now, and its tie to GitHub.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{
    self,
    projects::{Project, Summary},
};
use crate::http::error::AppResult;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// The user who created it.
    pub owner_id: Uuid,
    /// The team it belongs to (whose members may see and change it, by role).
    pub team_id: Option<Uuid>,
    pub git_url: String,
    pub branch: String,
    pub dockerfile: String,
    pub port: Option<i32>,
    pub health_path: String,
    pub health_timeout_secs: i32,
    pub memory_limit_mb: Option<i64>,
    pub cpu_limit_millis: Option<i32>,
    /// `auto` (the repository's Dockerfile if it has one, else the build plan), `dockerfile`
    /// (an app container) or `static` (files served by shard).
    pub build_type: String,
    /// For `static`: the directory of the built image that holds the site. For `auto`: the
    /// directory of the build (relative to `root_dir`) to serve as a site.
    pub static_dir: Option<String>,
    /// For `auto`: the directory of the repository the app lives in (monorepos).
    pub root_dir: Option<String>,
    /// For `auto`: commands that replace the plan's (`GET /projects/{id}/plan` shows them).
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
    /// How many copies of the app run (Swarm runtime; plain Docker runs one).
    pub replicas: i32,
    /// Node labels each replica's node must carry (Swarm runtime), e.g. `{"group": "edge"}`.
    #[schema(value_type = Object)]
    pub placement: std::collections::BTreeMap<String, String>,
    /// Where the app answers once live.
    pub url: String,
    /// `live`, the newest deployment's status, or `new` before the first deploy.
    pub status: String,
    pub live_deployment: Option<Uuid>,
    /// The newest deployment (what the projects list shows: when, which commit, who or what).
    pub latest_deployment: Option<LatestDeployment>,
    /// How the app runs right now: `not_deployed`, `running`, `stopped` or `crashed`.
    pub runtime: crate::proxy::RuntimeState,
    /// For a project imported from GitHub: its repository and how pushes reach shard.
    pub github: Option<GithubView>,
    /// Pull-request previews of this project.
    pub previews: PreviewSettings,
    /// On a pull request's preview: the project it previews, and the pull request.
    pub preview_of: Option<Uuid>,
    pub pr_number: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whether pull requests get previews, for how long and how many at once, and whether their
/// hosts ask for a password.
#[derive(Serialize, ToSchema, Clone, Copy)]
pub struct PreviewSettings {
    pub enabled: bool,
    /// A preview with no change for this many days is removed.
    pub ttl_days: i32,
    /// Open previews at most; the oldest is removed for a new one.
    pub max: i32,
    /// Whether the previews' hosts are behind HTTP basic auth (the credentials are never shown).
    pub basic_auth: bool,
}

/// Preview settings to save (`PATCH /projects/{id}` `previews`).
#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct PreviewSettingsInput {
    pub enabled: bool,
    pub ttl_days: i32,
    pub max: i32,
    /// `"user:password"` puts basic auth in front of every preview host; `null` removes it;
    /// absent keeps what is set.
    #[serde(default, deserialize_with = "super::projects::present")]
    #[schema(value_type = Option<String>)]
    pub basic_auth: Option<Option<String>>,
}

/// A project's tie to GitHub.
#[derive(Serialize, ToSchema)]
pub struct GithubView {
    /// `owner/name`.
    pub repo: String,
    /// `created`: shard created the push webhook on GitHub; `manual`: it must be added by hand
    /// (`GET /projects/{id}/webhook`).
    pub webhook: &'static str,
    /// Whether the GitHub account that imported it is still connected (fetches of a private
    /// repository and commit statuses need it).
    pub connected: bool,
}

/// A project's newest deployment in brief.
#[derive(Serialize, ToSchema)]
pub struct LatestDeployment {
    pub id: Uuid,
    pub status: String,
    pub trigger: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    /// The user who started it, when a user did.
    pub created_by: Option<String>,
    /// For trigger `push`: the GitHub login that pushed.
    pub pusher: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Usernames of the users who started these summaries' newest deployments.
pub(super) async fn deployers<'a>(
    state: &AppState,
    summaries: impl Iterator<Item = &'a Summary>,
) -> AppResult<std::collections::HashMap<Uuid, String>> {
    let ids = summaries.filter_map(|s| s.latest.as_ref()?.created_by);
    Ok(db::users::usernames(&state.db, ids).await?)
}

pub(super) fn view(
    state: &AppState,
    p: Project,
    summary: Summary,
    names: &std::collections::HashMap<Uuid, String>,
) -> ProjectView {
    let latest_deployment = summary.latest.map(|d| LatestDeployment {
        created_by: d.created_by.and_then(|u| names.get(&u).cloned()),
        pusher: d.pusher,
        id: d.id,
        status: d.status.to_string(),
        trigger: d.trigger.to_string(),
        commit_sha: d.commit_sha,
        commit_message: d.commit_message,
        created_at: d.created_at,
        finished_at: d.finished_at,
    });
    let url = state.deployer.app_url(&p.slug);
    let status = match (&summary.live_deployment, summary.latest_status) {
        (Some(_), Some(latest)) if latest != "failed" && latest != "cancelled" => latest,
        (Some(_), _) => "live".into(),
        (None, Some(latest)) => latest,
        (None, None) => "new".into(),
    };
    let placement = db::projects::placement_of(&p);
    ProjectView {
        id: p.id,
        name: p.name,
        slug: p.slug,
        owner_id: p.owner_id,
        team_id: p.team_id,
        git_url: p.git_url,
        branch: p.branch,
        dockerfile: p.dockerfile,
        port: p.port,
        health_path: p.health_path,
        health_timeout_secs: p.health_timeout_secs,
        memory_limit_mb: p.memory_limit_mb,
        cpu_limit_millis: p.cpu_limit_millis,
        build_type: p.build_type.to_string(),
        replicas: p.replicas,
        placement,
        static_dir: p.static_dir,
        root_dir: p.root_dir,
        install_command: p.install_command,
        build_command: p.build_command,
        start_command: p.start_command,
        url,
        status,
        live_deployment: summary.live_deployment,
        latest_deployment,
        runtime: state.proxy.runtime(p.id),
        github: p.github_repo.map(|repo| GithubView {
            repo,
            webhook: if p.github_hook_id.is_some() {
                "created"
            } else {
                "manual"
            },
            connected: p.git_account_id.is_some(),
        }),
        previews: PreviewSettings {
            enabled: p.previews_enabled,
            ttl_days: p.previews_ttl_days,
            max: p.previews_max,
            basic_auth: p.previews_auth_hash.is_some(),
        },
        preview_of: p.preview_of,
        pr_number: p.pr_number,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub(super) async fn one(state: &AppState, project: Project) -> AppResult<ProjectView> {
    let id = project.id;
    let summary = db::projects::summaries(&state.db, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let names = deployers(state, std::iter::once(&summary)).await?;
    Ok(view(state, project, summary, &names))
}

/// A project as the API shows it, just created.
pub(crate) fn created_view(state: &AppState, project: Project) -> ProjectView {
    view(state, project, Summary::default(), &Default::default())
}
