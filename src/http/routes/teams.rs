//! `/teams`: teams, their members and invitations. Every user has a personal team (theirs
//! alone); other teams are shared. Invitations are single-use links bound to one username,
//! with an expiry; only that user can accept one.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{self, Action, Role};
use crate::db::{self, invitations, teams};
use crate::http::access::{ManageMembers, Own, Read, TeamFor};
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;
use crate::{secrets, validate};

/// Teams a user may create.
const MAX_TEAMS_PER_USER: usize = 50;
/// Open invitations per team.
const MAX_PENDING_INVITATIONS: usize = 100;
/// Default and longest life of an invitation.
const INVITATION_HOURS: u32 = 72;
const MAX_INVITATION_HOURS: u32 = 24 * 30;
const INVITATION_PREFIX: &str = "shinv_";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/teams", web::get().to(list_teams))
        .route("/teams", web::post().to(create_team))
        .route("/teams/{id}", web::get().to(get_team))
        .route("/teams/{id}", web::patch().to(rename_team))
        .route("/teams/{id}", web::delete().to(delete_team))
        .route("/teams/{id}/members", web::get().to(list_members))
        .route("/teams/{id}/members/{user}", web::patch().to(set_role))
        .route(
            "/teams/{id}/members/{user}",
            web::delete().to(remove_member),
        )
        .route("/teams/{id}/invitations", web::get().to(list_invitations))
        .route("/teams/{id}/invitations", web::post().to(invite))
        .route(
            "/teams/{id}/invitations/{invitation}",
            web::delete().to(withdraw_invitation),
        )
        .route(
            "/invitations/{token}/accept",
            web::post().to(accept_invitation),
        );
}

#[derive(Serialize, ToSchema)]
pub struct TeamView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// A user's own team: theirs alone, nobody can be invited.
    pub personal: bool,
    /// The caller's role here (`owner` for instance admins outside it).
    pub role: String,
    pub created_at: DateTime<Utc>,
}

fn team_view(team: teams::Team, role: Role) -> TeamView {
    TeamView {
        personal: team.personal_of.is_some(),
        id: team.id,
        name: team.name,
        slug: team.slug,
        role: role.to_string(),
        created_at: team.created_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamDetail {
    #[serde(flatten)]
    pub team: TeamView,
    pub members: Vec<MemberView>,
}

/// The caller's teams (personal first) and their role in each.
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", responses((status = 200, body = [TeamView])),
    security(("bearer" = ["scope:read"])))]
pub async fn list_teams(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<Vec<TeamView>>> {
    let mine = teams::of_user(&state.db, actor.user_id).await?;
    Ok(web::Json(
        mine.into_iter().map(|(t, r)| team_view(t, r)).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamRequest {
    pub name: String,
}

fn team_name(raw: &str) -> AppResult<(String, String)> {
    let name = raw.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "name",
            "must be 1 to 100 printable characters",
        ));
    }
    let slug = validate::slugify(&name);
    if slug.is_empty() {
        return Err(AppError::validation(
            "name",
            "needs at least one letter or digit",
        ));
    }
    Ok((name, slug))
}

fn slug_taken(slug: &str) -> AppError {
    AppError::Conflict(format!("a team with the slug '{slug}' already exists"))
}

/// Creates a shared team; the caller is its owner.
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = TeamRequest,
    responses((status = 201, body = TeamView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_team(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    body: JsonBody<TeamRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    let (name, slug) = team_name(&body.name)?;
    let owned = teams::of_user(&state.db, actor.user_id)
        .await?
        .into_iter()
        .filter(|(t, r)| t.personal_of.is_none() && *r == crate::model::Role::Owner)
        .count();
    if owned >= MAX_TEAMS_PER_USER {
        return Err(AppError::Conflict(format!(
            "a user can own at most {MAX_TEAMS_PER_USER} teams"
        )));
    }
    let team = match teams::create(&state.db, &name, &slug, actor.user_id).await {
        Ok(team) => team,
        Err(e) if db::is_unique_violation(&e) => return Err(slug_taken(&slug)),
        Err(e) => return Err(e.into()),
    };
    crate::http::audit::action(&req, "team.create", "team", team.id);
    crate::http::audit::note(&req, |f| f.team = Some(team.id));
    Ok(HttpResponse::Created().json(team_view(team, crate::model::Role::Owner)))
}

async fn members_of(state: &AppState, team: uuid::Uuid) -> AppResult<Vec<MemberView>> {
    Ok(teams::members(&state.db, team)
        .await?
        .into_iter()
        .map(|(m, username)| MemberView {
            user_id: m.user_id,
            username,
            role: m.role.to_string(),
            joined_at: m.created_at,
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")), responses((status = 200, body = TeamDetail), (status = 404)),
    security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn get_team(
    state: web::Data<AppState>,
    TeamFor(_actor, team, role, _need): TeamFor<Read>,
) -> AppResult<web::Json<TeamDetail>> {
    let members = members_of(&state, team.id).await?;
    Ok(web::Json(TeamDetail {
        team: team_view(team, role),
        members,
    }))
}

/// A team's members, owners first.
#[utoipa::path(get, path = "/api/v1/teams/{id}/members", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")), responses((status = 200, body = [MemberView]), (status = 404)),
    security(("bearer" = ["role:viewer", "scope:read"])))]
pub async fn list_members(
    state: web::Data<AppState>,
    TeamFor(_actor, team, _role, _need): TeamFor<Read>,
) -> AppResult<web::Json<Vec<MemberView>>> {
    Ok(web::Json(members_of(&state, team.id).await?))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")), request_body = TeamRequest,
    responses((status = 200, body = TeamView), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = ["role:owner", "scope:admin"])))]
pub async fn rename_team(
    state: web::Data<AppState>,
    TeamFor(_actor, team, role, _need): TeamFor<Own>,
    body: JsonBody<TeamRequest>,
) -> AppResult<web::Json<TeamView>> {
    let body = body.parse()?;
    let (name, slug) = team_name(&body.name)?;
    let slug = if team.personal_of.is_some() {
        team.slug.clone()
    } else {
        slug
    };
    match teams::rename(&state.db, team, &name, &slug).await {
        Ok(team) => Ok(web::Json(team_view(team, role))),
        Err(e) if db::is_unique_violation(&e) => Err(slug_taken(&slug)),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a shared team that holds no project.
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")),
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "personal, or still has projects")),
    security(("bearer" = ["role:owner", "scope:admin"])))]
pub async fn delete_team(
    state: web::Data<AppState>,
    TeamFor(_actor, team, _role, _need): TeamFor<Own>,
) -> AppResult<HttpResponse> {
    if team.personal_of.is_some() {
        return Err(AppError::Conflict(
            "a personal team goes only with its user".into(),
        ));
    }
    let projects = teams::count_projects(&state.db, team.id).await?;
    if projects > 0 {
        return Err(AppError::Conflict(format!(
            "the team still has {projects} project(s); delete or move them first"
        )));
    }
    teams::delete(&state.db, team.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// `owner`, `admin`, `member` or `viewer`.
    pub role: String,
}

fn parse_role(raw: &str) -> AppResult<Role> {
    Role::parse(raw)
        .ok_or_else(|| AppError::validation("role", "must be owner, admin, member or viewer"))
}

/// The member `user` of `team`, and 409 when a change would leave the team without an owner.
async fn member(
    state: &AppState,
    team: &teams::Team,
    user: Uuid,
    leaves_owner: bool,
) -> AppResult<Role> {
    let role = teams::role_of(&state.db, team.id, user)
        .await?
        .ok_or_else(|| AppError::not_found("member"))?;
    if leaves_owner && role == Role::Owner && teams::count_owners(&state.db, team.id).await? <= 1 {
        return Err(AppError::Conflict(
            "the team's only owner cannot leave or step down; make another member owner first"
                .into(),
        ));
    }
    Ok(role)
}

/// Changes a member's role. Admins manage admins, members and viewers; only owners make or
/// unmake owners.
#[utoipa::path(patch, path = "/api/v1/teams/{id}/members/{user}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id"), ("user" = uuid::Uuid, Path, description = "the member's user id")), request_body = RoleRequest,
    responses((status = 200, body = MemberView), (status = 403), (status = 404), (status = 409, description = "the last owner"), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn set_role(
    state: web::Data<AppState>,
    req: HttpRequest,
    TeamFor(actor, team, _role, _need): TeamFor<ManageMembers>,
    path: web::Path<(Uuid, Uuid)>,
    body: JsonBody<RoleRequest>,
) -> AppResult<web::Json<MemberView>> {
    let body = body.parse()?;
    let user = path.into_inner().1;
    let new = parse_role(&body.role)?;
    let old = member(&state, &team, user, new != Role::Owner).await?;
    if new == Role::Owner || old == Role::Owner {
        access::check_team(&state.db, &actor, &team, Action::Own).await?;
    }
    teams::set_role(&state.db, team.id, user, new).await?;
    crate::http::audit::action(&req, "member.role", "user", user);
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "from": old.as_str(), "to": new.as_str() }),
    );
    let username = db::users::find(&state.db, user)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    Ok(web::Json(MemberView {
        user_id: user,
        username,
        role: new.as_str().to_string(),
        joined_at: Utc::now(),
    }))
}

/// Removes a member (admins remove members and viewers, owners anyone); anyone may leave.
#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id"), ("user" = uuid::Uuid, Path, description = "the member's user id")),
    responses((status = 204), (status = 403), (status = 404), (status = 409, description = "the last owner")),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn remove_member(
    state: web::Data<AppState>,
    req: HttpRequest,
    TeamFor(actor, team, _role, _need): TeamFor<Read>,
    path: web::Path<(Uuid, Uuid)>,
) -> AppResult<HttpResponse> {
    let user = path.into_inner().1;
    if user == actor.user_id {
        // Leaving is a change to one's own account.
        access::account(&actor, true)?;
    } else {
        access::check_team(&state.db, &actor, &team, Action::ManageMembers).await?;
    }
    if team.personal_of == Some(user) {
        return Err(AppError::Conflict(
            "nobody leaves their personal team".into(),
        ));
    }
    let role = member(&state, &team, user, true).await?;
    if role >= Role::Admin && user != actor.user_id {
        access::check_team(&state.db, &actor, &team, Action::Own).await?;
    }
    teams::remove_member(&state.db, team.id, user).await?;
    crate::http::audit::action(&req, "member.remove", "user", user);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The only user who may accept.
    pub username: String,
    pub role: String,
    /// Hours until it expires (default 72, at most 720).
    pub expires_in_hours: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub id: Uuid,
    pub username: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The secret of the link; only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The dashboard page that accepts it; only in the creation answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn invitation_view(i: invitations::Invitation) -> InvitationView {
    InvitationView {
        id: i.id,
        username: i.username,
        role: i.role.to_string(),
        created_at: i.created_at,
        expires_at: i.expires_at,
        token: None,
        url: None,
    }
}

/// Invites a user by name. The answer holds the link's secret, once.
#[utoipa::path(post, path = "/api/v1/teams/{id}/invitations", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")), request_body = InviteRequest,
    responses((status = 201, body = InvitationView), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    TeamFor(actor, team, _role, _need): TeamFor<ManageMembers>,
    body: JsonBody<InviteRequest>,
) -> AppResult<HttpResponse> {
    let body = body.parse()?;
    if team.personal_of.is_some() {
        return Err(AppError::Conflict(
            "a personal team is yours alone; create a team to share projects".into(),
        ));
    }
    let role = parse_role(&body.role)?;
    if role == Role::Owner {
        access::check_team(&state.db, &actor, &team, Action::Own).await?;
    }
    let hours = body.expires_in_hours.unwrap_or(INVITATION_HOURS);
    if !(1..=MAX_INVITATION_HOURS).contains(&hours) {
        return Err(AppError::validation(
            "expires_in_hours",
            format!("must be between 1 and {MAX_INVITATION_HOURS}"),
        ));
    }
    let username = body.username.trim().to_lowercase();
    let invitee = db::users::find_by_username(&state.db, &username)
        .await?
        .ok_or_else(|| AppError::validation("username", format!("no user named '{username}'")))?;
    if teams::role_of(&state.db, team.id, invitee.id)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "'{username}' is already a member; change their role instead"
        )));
    }
    if invitations::pending(&state.db, team.id).await?.len() >= MAX_PENDING_INVITATIONS {
        return Err(AppError::Conflict(format!(
            "a team can have at most {MAX_PENDING_INVITATIONS} open invitations; withdraw some"
        )));
    }
    let token = secrets::random_token(INVITATION_PREFIX);
    let row = invitations::create(
        &state.db,
        invitations::New {
            team_id: team.id,
            token_hash: &secrets::token_hash(&token),
            username: &invitee.username,
            role,
            invited_by: actor.user_id,
            expires_at: Utc::now() + Duration::hours(i64::from(hours)),
        },
    )
    .await?;
    crate::http::audit::action(&req, "member.invite", "user", invitee.id);
    crate::http::audit::detail(&req, serde_json::json!({ "role": role.as_str() }));
    let url = format!("{}/invitations/{token}", state.public_base());
    let mut view = invitation_view(row);
    view.token = Some(token);
    view.url = Some(url);
    Ok(HttpResponse::Created().json(view))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}/invitations", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id")),
    responses((status = 200, body = [InvitationView]), (status = 403), (status = 404)),
    security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn list_invitations(
    state: web::Data<AppState>,
    TeamFor(_actor, team, _role, _need): TeamFor<ManageMembers>,
) -> AppResult<web::Json<Vec<InvitationView>>> {
    let list = invitations::pending(&state.db, team.id).await?;
    Ok(web::Json(list.into_iter().map(invitation_view).collect()))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}/invitations/{invitation}", tag = "teams", params(("id" = uuid::Uuid, Path, description = "the team id"), ("invitation" = uuid::Uuid, Path, description = "the invitation id")),
    responses((status = 204), (status = 403), (status = 404)), security(("bearer" = ["role:admin", "scope:admin"])))]
pub async fn withdraw_invitation(
    state: web::Data<AppState>,
    TeamFor(_actor, team, _role, _need): TeamFor<ManageMembers>,
    path: web::Path<(Uuid, Uuid)>,
) -> AppResult<HttpResponse> {
    if invitations::delete(&state.db, team.id, path.into_inner().1).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(AppError::not_found("invitation"))
    }
}

/// Accepts an invitation: only the invited user, once, before it expires.
#[utoipa::path(post, path = "/api/v1/invitations/{token}/accept", tag = "teams", params(("token" = String, Path, description = "the invitation token")),
    responses((status = 200, body = TeamView), (status = 403, description = "the invitation is for another user"),
        (status = 404), (status = 409, description = "already used or expired")),
    security(("bearer" = [])))]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    token: web::Path<String>,
) -> AppResult<web::Json<TeamView>> {
    let invitation = invitations::find_by_hash(&state.db, &secrets::token_hash(&token))
        .await?
        .ok_or_else(|| AppError::not_found("invitation"))?;
    if invitation.username != actor.username {
        return Err(AppError::Forbidden(
            "this invitation is for another user; sign in as the invited user to accept it".into(),
        ));
    }
    if invitation.accepted_at.is_some() {
        return Err(AppError::Conflict(
            "this invitation was already used".into(),
        ));
    }
    if invitation.expires_at <= Utc::now() {
        return Err(AppError::Conflict(
            "this invitation has expired; ask for a new one".into(),
        ));
    }
    if !invitations::accept(&state.db, &invitation, actor.user_id).await? {
        return Err(AppError::Conflict(
            "this invitation was already used or has just expired".into(),
        ));
    }
    let team = teams::find(&state.db, invitation.team_id)
        .await?
        .ok_or_else(|| AppError::not_found("team"))?;
    crate::http::audit::action(&req, "member.join", "team", team.id);
    crate::http::audit::note(&req, |f| f.team = Some(team.id));
    crate::http::audit::detail(
        &req,
        serde_json::json!({ "role": invitation.role.as_str() }),
    );
    let role = teams::role_of(&state.db, team.id, actor.user_id)
        .await?
        .unwrap_or(invitation.role);
    Ok(web::Json(team_view(team, role)))
}
