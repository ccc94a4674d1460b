//! The rule itself, free of I/O: roles, token scopes, actions, and `decide`.

use uuid::Uuid;

use super::Refusal;
use crate::auth::Actor;

pub use crate::model::{Role, Scope};

/// What a request does to a project or team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See a project (settings, deployments, logs, metrics, masked environment, domains) or a
    /// team and its members.
    Read,
    /// Deploy, roll back, cancel, start, stop, restart.
    Deploy,
    /// Create a project in a team.
    CreateProject,
    /// Change a project's settings, environment, domains or GitHub link; see its webhook
    /// secret.
    Configure,
    /// Invite members, change roles below owner, remove members.
    ManageMembers,
    /// Delete a project; rename or delete a team; make or unmake owners; read the team's audit
    /// log.
    Own,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Read,
        Action::Deploy,
        Action::CreateProject,
        Action::Configure,
        Action::ManageMembers,
        Action::Own,
    ];

    /// The weakest team role that may do it.
    pub fn min_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Deploy | Action::CreateProject => Role::Member,
            Action::Configure | Action::ManageMembers => Role::Admin,
            Action::Own => Role::Owner,
        }
    }

    /// The narrowest token scope that may do it.
    pub fn min_scope(self) -> Scope {
        match self {
            Action::Read => Scope::Read,
            Action::Deploy => Scope::Deploy,
            _ => Scope::Admin,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Deploy => "deploy or control the app",
            Action::CreateProject => "create projects",
            Action::Configure => "change settings",
            Action::ManageMembers => "manage members",
            Action::Own => "do this (owners only)",
        }
    }
}

/// The rule. `role` is the actor's role in the resource's team (`None`: not a member);
/// `project` the project acted on, if any, for tokens limited to some projects.
pub fn decide(
    actor: &Actor,
    role: Option<Role>,
    project: Option<Uuid>,
    action: Action,
) -> Result<(), Refusal> {
    let Some(role) = role else {
        return Err(Refusal::Hidden);
    };
    if let Some(token) = &actor.token {
        if let Some(limit) = &token.projects {
            match project {
                Some(p) if limit.contains(&p) => {}
                Some(_) => return Err(Refusal::Hidden),
                None if action == Action::Read => {}
                None => {
                    return Err(Refusal::Forbidden(
                        "this API token is limited to some projects; it cannot act on a team"
                            .into(),
                    ));
                }
            }
        }
        if token.scope < action.min_scope() {
            return Err(Refusal::Forbidden(format!(
                "this API token's scope is '{}'; to {} it needs '{}'",
                token.scope.as_str(),
                action.describe(),
                action.min_scope().as_str()
            )));
        }
    }
    if role < action.min_role() {
        return Err(Refusal::Forbidden(format!(
            "your role in this team is '{}'; to {} you need '{}'",
            role.as_str(),
            action.describe(),
            action.min_role().as_str()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenGrant;

    fn actor(token: Option<TokenGrant>) -> Actor {
        Actor {
            user_id: Uuid::nil(),
            username: "u".into(),
            role: crate::model::UserRole::Member,
            token,
        }
    }

    #[test]
    fn every_role_may_do_exactly_the_actions_at_or_below_it() {
        let a = actor(None);
        for &role in Role::ALL {
            for action in Action::ALL {
                let allowed = decide(&a, Some(role), None, action).is_ok();
                assert_eq!(allowed, role >= action.min_role(), "{role:?} {action:?}");
            }
        }
        assert_eq!(decide(&a, None, None, Action::Read), Err(Refusal::Hidden));
    }

    #[test]
    fn tokens_narrow_by_scope_and_project() {
        let p = Uuid::now_v7();
        for &scope in Scope::ALL {
            let a = actor(Some(TokenGrant {
                id: Uuid::nil(),
                scope,
                projects: Some(vec![p]),
                expires_at: None,
            }));
            for action in Action::ALL {
                let on_p = decide(&a, Some(Role::Owner), Some(p), action).is_ok();
                assert_eq!(on_p, scope >= action.min_scope(), "{scope:?} {action:?}");
                let other = decide(&a, Some(Role::Owner), Some(Uuid::now_v7()), action);
                assert_eq!(other, Err(Refusal::Hidden));
            }
            // A project-limited token acts on no team, but may read it.
            assert!(decide(&a, Some(Role::Owner), None, Action::ManageMembers).is_err());
            assert!(decide(&a, Some(Role::Owner), None, Action::Read).is_ok());
        }
    }
}
