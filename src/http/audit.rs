//! The audit trail at the HTTP edge. Every state-changing request (any method but GET, HEAD
//! and OPTIONS) is recorded once its answer is known: who (user and token), what, on which
//! team, project and target, from where, and the status. Extractors note the actor and the
//! resource as they authorize; handlers may name the action and add a detail (never a secret:
//! environment changes list keys, not values). Anonymous requests are recorded only when a
//! handler names what they did (first-run setup, a login, a webhook delivery): anyone can send
//! the others, and the login limiter and the logs cover them.

use actix_web::dev::ServiceResponse;
use actix_web::{HttpMessage, HttpRequest, http::Method};
use uuid::Uuid;

use crate::auth::Actor;
use crate::state::AppState;

/// What is known about a request for its audit entry.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub user: Option<Uuid>,
    pub name: Option<String>,
    pub token: Option<Uuid>,
    pub action: Option<String>,
    pub target: Option<(&'static str, Uuid)>,
    pub team: Option<Uuid>,
    pub project: Option<Uuid>,
    pub detail: Option<serde_json::Value>,
}

/// Adds to the request's facts.
pub fn note(req: &HttpRequest, add: impl FnOnce(&mut Facts)) {
    let mut extensions = req.extensions_mut();
    if extensions.get::<Facts>().is_none() {
        extensions.insert(Facts::default());
    }
    if let Some(facts) = extensions.get_mut::<Facts>() {
        add(facts);
    }
}

/// Records who is acting.
pub fn actor(req: &HttpRequest, actor: &Actor) {
    note(req, |f| {
        f.user = Some(actor.user_id);
        f.name = Some(actor.username.clone());
        f.token = actor.token.as_ref().map(|t| t.id);
    });
}

/// Names the action and its target (`project.create` on project X).
pub fn action(req: &HttpRequest, action: &str, target_type: &'static str, target: Uuid) {
    note(req, |f| {
        f.action = Some(action.to_string());
        f.target = Some((target_type, target));
    });
}

/// Adds a detail to the entry (keys changed, role granted...).
pub fn detail(req: &HttpRequest, detail: serde_json::Value) {
    note(req, |f| f.detail = Some(detail));
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The action name of a request no handler named: the route's fixed segments and the method,
/// e.g. `POST /api/v1/projects/{id}/stop` → `projects.stop`, `DELETE /api/v1/tokens/{id}` →
/// `tokens.delete`.
pub fn derived_action(method: &Method, pattern: &str) -> String {
    let segments: Vec<&str> = pattern
        .trim_start_matches("/api/v1")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let names: Vec<&str> = segments
        .iter()
        .copied()
        .filter(|s| !s.starts_with('{'))
        .collect();
    let ends_in_collection = segments.last().is_some_and(|s| !s.starts_with('{'))
        && (segments.len() == 1 || segments[segments.len() - 2].starts_with('{'))
        && !is_verb(segments.last().copied().unwrap_or_default());
    let verb = match *method {
        Method::POST if ends_in_collection => Some("create"),
        Method::POST => None,
        Method::PUT => Some("replace"),
        Method::PATCH => Some("update"),
        Method::DELETE => Some("delete"),
        _ => Some("request"),
    };
    let mut name = names.join(".");
    if let Some(verb) = verb {
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(verb);
    }
    name
}

/// Path segments that name an operation, not a collection (`/projects/{id}/stop`).
fn is_verb(segment: &str) -> bool {
    matches!(
        segment,
        "start"
            | "stop"
            | "restart"
            | "cancel"
            | "verify"
            | "test"
            | "accept"
            | "login"
            | "logout"
            | "refresh"
            | "setup"
            | "password"
            | "github"
            | "disconnect"
            | "import"
    )
}

/// Writes the entry for a finished request, if it changed (or tried to change) state.
pub async fn record(state: &AppState, response: &ServiceResponse) {
    let req = response.request();
    if !changes_state(req.method()) || !req.path().starts_with("/api/v1/") {
        return;
    }
    let facts = req.extensions().get::<Facts>().cloned().unwrap_or_default();
    let status = response.status();
    // Nobody known and nothing named: an anonymous request (a failed login, a CLI sign-in
    // being polled) that changed nothing worth keeping.
    if facts.user.is_none() && facts.action.is_none() {
        return;
    }
    let action = facts.action.clone().unwrap_or_else(|| {
        derived_action(
            req.method(),
            req.match_pattern().as_deref().unwrap_or(req.path()),
        )
    });
    let entry = crate::db::audit::Entry {
        actor_id: facts.user,
        actor_name: facts.name.as_deref(),
        token_id: facts.token,
        action: &action,
        target_type: facts.target.map_or("", |t| t.0),
        target_id: facts.target.map(|t| t.1),
        team_id: facts.team,
        project_id: facts.project,
        detail: facts.detail.as_ref().map(|d| d.to_string()),
        ip: Some(super::auth::client_ip(req)),
        status: Some(i32::from(status.as_u16())),
    };
    if let Err(e) = crate::db::audit::record(&state.db, entry).await {
        tracing::warn!(error = %e, "cannot write audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_after_the_route() {
        let cases = [
            (Method::POST, "/api/v1/projects", "projects.create"),
            (Method::POST, "/api/v1/projects/{id}/stop", "projects.stop"),
            (
                Method::POST,
                "/api/v1/projects/{id}/deployments",
                "projects.deployments.create",
            ),
            (
                Method::PUT,
                "/api/v1/projects/{id}/env",
                "projects.env.replace",
            ),
            (Method::DELETE, "/api/v1/tokens/{id}", "tokens.delete"),
            (
                Method::POST,
                "/api/v1/invitations/{token}/accept",
                "invitations.accept",
            ),
            (
                Method::PATCH,
                "/api/v1/teams/{id}/members/{user}",
                "teams.members.update",
            ),
        ];
        for (method, pattern, want) in cases {
            assert_eq!(derived_action(&method, pattern), want, "{pattern}");
        }
    }
}
