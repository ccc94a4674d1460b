//! Authorization: the one place that decides whether an actor may take an action on a
//! resource. `decide` is the rule (team role, token scope, token project limits, instance
//! admins); the loaders below fetch a project, deployment or team and ask it. A resource the
//! caller may not see is reported exactly like one that does not exist (404); one they see but
//! may not change is a 403 that says which role or scope is missing.

mod policy;

pub use policy::{Action, Role, Scope, decide};

use uuid::Uuid;

use crate::auth::Actor;
use crate::db::{self, Db, projects::Project, teams::Team};

/// Why an action is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller may not even know the resource exists.
    Hidden,
    /// The caller sees it but lacks a role or scope; the message says which.
    Forbidden(String),
}

impl Refusal {
    fn into_error(self, what: &'static str) -> Denied {
        match self {
            Refusal::Hidden => Denied::NotFound(what),
            Refusal::Forbidden(why) => Denied::Forbidden(why),
        }
    }
}

/// Why a loader or check gives no access: the HTTP layer answers 404, 403 or 500.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// The resource (named) does not exist or the caller may not know it does.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller sees it but may not do this; the message says which role or scope is missing.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

type AccessResult<T> = Result<T, Denied>;

/// The actor's role in a team: instance admins act as owners everywhere.
async fn role_in(db: &Db, actor: &Actor, team: Option<Uuid>) -> AccessResult<Option<Role>> {
    if actor.is_admin() {
        return Ok(Some(Role::Owner));
    }
    let Some(team) = team else {
        return Ok(None);
    };
    Ok(db::teams::role_of(db, team, actor.user_id).await?)
}

/// The project `id`, if the actor may take `action` on it.
pub async fn project(db: &Db, actor: &Actor, id: Uuid, action: Action) -> AccessResult<Project> {
    let Some(project) = db::projects::find(db, id).await? else {
        return Err(Denied::NotFound("project"));
    };
    check_project(db, actor, &project, action).await?;
    Ok(project)
}

/// Whether the actor may take `action` on this (loaded) project.
pub async fn check_project(
    db: &Db,
    actor: &Actor,
    project: &Project,
    action: Action,
) -> AccessResult<()> {
    let role = role_in(db, actor, project.team_id).await?;
    decide(actor, role, Some(project.id), action).map_err(|r| r.into_error("project"))
}

/// Whether the actor may take `action` on this (loaded) one-click database: by their role in
/// its team. A token limited to some projects reaches no database.
pub async fn check_database(
    db: &Db,
    actor: &Actor,
    database: &db::databases::Database,
    action: Action,
) -> AccessResult<()> {
    if actor.token.as_ref().is_some_and(|t| t.projects.is_some()) {
        return Err(Denied::NotFound("database"));
    }
    let role = role_in(db, actor, database.team_id).await?;
    decide(actor, role, None, action).map_err(|r| r.into_error("database"))
}

/// The team `id` and the actor's role in it, if they may take `action` there.
pub async fn team(db: &Db, actor: &Actor, id: Uuid, action: Action) -> AccessResult<(Team, Role)> {
    let Some(team) = db::teams::find(db, id).await? else {
        return Err(Denied::NotFound("team"));
    };
    let role = check_team(db, actor, &team, action).await?;
    Ok((team, role))
}

/// The actor's role in this (loaded) team, if they may take `action` there.
pub async fn check_team(db: &Db, actor: &Actor, team: &Team, action: Action) -> AccessResult<Role> {
    let role = role_in(db, actor, Some(team.id)).await?;
    decide(actor, role, None, action).map_err(|r| r.into_error("team"))?;
    Ok(role.unwrap_or(Role::Viewer))
}

/// A request that names no resource (accounts, tokens, users, system pages): reads are open
/// to any caller; changes need a full-scope credential not limited to some projects.
pub fn account(actor: &Actor, changes: bool) -> AccessResult<()> {
    match &actor.token {
        Some(token) if changes && actor.is_narrowed() => Err(Denied::Forbidden(format!(
            "this API token (scope '{}'{}) cannot change account or instance settings; \
                 that needs an unlimited 'admin' token or a sign-in",
            token.scope.as_str(),
            if token.projects.is_some() {
                ", limited to some projects"
            } else {
                ""
            }
        ))),
        _ => Ok(()),
    }
}

/// What belongs to the person rather than to a project (their GitHub repositories, their
/// notices of every project): not for a token limited to some projects.
pub fn personal(actor: &Actor) -> AccessResult<()> {
    match &actor.token {
        Some(token) if token.projects.is_some() => Err(Denied::Forbidden(
            "this API token is limited to some projects; it cannot read what belongs to the \
             account (GitHub repositories, notices of every project)"
                .into(),
        )),
        _ => Ok(()),
    }
}

/// The instance-wide rights (users, the system topic, all tokens): instance admins only,
/// through a credential that is not narrowed.
pub fn instance_admin(actor: &Actor) -> AccessResult<()> {
    if !actor.is_admin() {
        return Err(Denied::Forbidden("admin role required".into()));
    }
    if actor.is_narrowed() {
        return Err(Denied::Forbidden(
            "this API token's scope does not reach instance settings".into(),
        ));
    }
    Ok(())
}

/// A resource that belongs to one user (a notification channel, an API token): only that
/// user reaches it; instance admins too when `admins_too` (they may revoke anyone's token).
pub fn owned_by(
    actor: &Actor,
    owner: Uuid,
    admins_too: bool,
    what: &'static str,
) -> AccessResult<()> {
    if actor.user_id == owner || (admins_too && instance_admin(actor).is_ok()) {
        Ok(())
    } else {
        Err(Denied::NotFound(what))
    }
}

/// What the actor may list: `None` for every project (instance admins), else the teams they
/// belong to; and the token's project limit, if any.
pub struct Visible {
    pub teams: Option<Vec<Uuid>>,
    pub projects: Option<Vec<Uuid>>,
}

pub async fn visible(db: &Db, actor: &Actor) -> AccessResult<Visible> {
    let teams = if actor.is_admin() {
        None
    } else {
        Some(db::teams::ids_of_user(db, actor.user_id).await?)
    };
    Ok(Visible {
        teams,
        projects: actor.token.as_ref().and_then(|t| t.projects.clone()),
    })
}

impl Visible {
    pub fn includes(&self, project: &Project) -> bool {
        let in_team = match (&self.teams, project.team_id) {
            (None, _) => true,
            (Some(teams), Some(team)) => teams.contains(&team),
            (Some(_), None) => false,
        };
        in_team
            && self
                .projects
                .as_ref()
                .is_none_or(|p| p.contains(&project.id))
    }
}
