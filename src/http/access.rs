//! Extractors that authorize a request on the resource its path names, before the body is
//! read: `ProjectFor<Deploy>` on `/projects/{id}/...`, `DeploymentFor<Read>` on
//! `/deployments/{id}/...`, `TeamFor<ManageMembers>` on `/teams/{id}/...`. Each resolves the
//! caller, loads the resource and asks `access` (the one decision), and notes actor, team and
//! project for the audit log. A handler declares what it does by the type it takes.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use uuid::Uuid;

use crate::access::{self, Action, Role};
use crate::auth::Actor;
use crate::db::{self, deployments::Deployment, projects::Project, teams::Team};
use crate::http::error::AppError;
use crate::state::AppState;

/// An action a route performs, as a type.
pub trait Need: 'static {
    const ACTION: Action;
}

macro_rules! needs {
    ($($name:ident => $action:ident),* $(,)?) => {$(
        #[doc = concat!("The route needs `Action::", stringify!($action), "`.")]
        pub struct $name;
        impl Need for $name {
            const ACTION: Action = Action::$action;
        }
    )*};
}

needs! {
    Read => Read,
    Deploy => Deploy,
    CreateProject => CreateProject,
    Configure => Configure,
    ManageMembers => ManageMembers,
    Own => Own,
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, AppError>>>>;

/// The `{id}` of the path.
fn path_id(req: &HttpRequest) -> Result<Uuid, AppError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    raw.parse()
        .map_err(|_| AppError::BadRequest(format!("invalid id in path: '{raw}' is not a UUID")))
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, AppError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("app state missing")))
}

fn note_project(req: &HttpRequest, project: &Project) {
    super::audit::note(req, |f| {
        f.project = Some(project.id);
        f.team = project.team_id;
        f.target.get_or_insert(("project", project.id));
    });
}

/// The shell every extractor shares: authenticate, then hand the request, state, actor and
/// the path's `{id}` to `load`, which fetches the resource and asks `access`.
fn resolve<T, F, Fut>(req: &HttpRequest, load: F) -> Boxed<T>
where
    F: FnOnce(HttpRequest, web::Data<AppState>, Actor, Uuid) -> Fut + 'static,
    Fut: Future<Output = Result<T, AppError>> + 'static,
{
    let actor = super::auth::authenticate(req);
    let req = req.clone();
    Box::pin(async move {
        let actor = actor.await?;
        let (state, id) = (state_of(&req)?, path_id(&req)?);
        load(req, state, actor, id).await
    })
}

/// The project of `/projects/{id}`, which the caller may act on with `A`.
pub struct ProjectFor<A: Need>(pub Actor, pub Project, pub PhantomData<A>);

impl<A: Need> FromRequest for ProjectFor<A> {
    type Error = AppError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        resolve(req, |req, state, actor, id| async move {
            let project = db::projects::find(&state.db, id)
                .await?
                .ok_or_else(|| AppError::not_found("project"))?;
            // Noted before the decision, so a refused attempt is on the team's record too.
            note_project(&req, &project);
            access::check_project(&state.db, &actor, &project, A::ACTION).await?;
            Ok(ProjectFor(actor, project, PhantomData))
        })
    }
}

/// The deployment of `/deployments/{id}` and its project, on which the caller may act with `A`.
pub struct DeploymentFor<A: Need>(pub Actor, pub Deployment, pub Project, pub PhantomData<A>);

impl<A: Need> FromRequest for DeploymentFor<A> {
    type Error = AppError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        resolve(req, |req, state, actor, id| async move {
            let not_found = || AppError::not_found("deployment");
            let deployment = db::deployments::find(&state.db, id)
                .await?
                .ok_or_else(not_found)?;
            let project = db::projects::find(&state.db, deployment.project_id)
                .await?
                .ok_or_else(not_found)?;
            super::audit::note(&req, |f| f.target = Some(("deployment", deployment.id)));
            note_project(&req, &project);
            match access::check_project(&state.db, &actor, &project, A::ACTION).await {
                Err(access::Denied::NotFound(_)) => return Err(not_found()),
                other => other?,
            }
            Ok(DeploymentFor(actor, deployment, project, PhantomData))
        })
    }
}

/// The one-click database of `/databases/{id}`, on which the caller may act with `A`.
pub struct DatabaseFor<A: Need>(pub Actor, pub db::databases::Database, pub PhantomData<A>);

impl<A: Need> FromRequest for DatabaseFor<A> {
    type Error = AppError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        resolve(req, |req, state, actor, id| async move {
            let database = db::databases::find(&state.db, id)
                .await?
                .ok_or_else(|| AppError::not_found("database"))?;
            super::audit::note(&req, |f| {
                f.target = Some(("database", database.id));
                f.team = database.team_id;
            });
            access::check_database(&state.db, &actor, &database, A::ACTION).await?;
            Ok(DatabaseFor(actor, database, PhantomData))
        })
    }
}

/// The team of `/teams/{id}` and the caller's role there, which allows `A`.
pub struct TeamFor<A: Need>(pub Actor, pub Team, pub Role, pub PhantomData<A>);

impl<A: Need> FromRequest for TeamFor<A> {
    type Error = AppError;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        resolve(req, |req, state, actor, id| async move {
            let team = db::teams::find(&state.db, id)
                .await?
                .ok_or_else(|| AppError::not_found("team"))?;
            super::audit::note(&req, |f| {
                f.team = Some(team.id);
                f.target.get_or_insert(("team", team.id));
            });
            let role = access::check_team(&state.db, &actor, &team, A::ACTION).await?;
            Ok(TeamFor(actor, team, role, PhantomData))
        })
    }
}
