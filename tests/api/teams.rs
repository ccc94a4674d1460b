//! Teams and roles. The role matrix is generated from the OpenAPI document: every route on a
//! project, deployment or team states in its security requirement the weakest role and the
//! narrowest token scope that may call it; each is called as every role, as an outsider, as an
//! instance admin and with every token scope, and must answer exactly as stated (allowed,
//! 403, or 404 as if it did not exist). Each call that changes state must leave one audit
//! entry naming its actor and status. The WebSocket topics are checked the same way.

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// One person in the fixture, signed in.
pub struct Person {
    pub name: &'static str,
    pub id: String,
    pub token: String,
}

/// A shared team `acme` owned by `olive`, with `adam` (admin), `mia` (member) and `vic`
/// (viewer), who joined by invitation; `otto` is in no team of theirs. `project` belongs to
/// the team and has one (failed) deployment.
pub struct Fixture {
    pub admin: Session,
    pub team: String,
    pub project: String,
    pub deployment: String,
    pub people: Vec<(Option<&'static str>, Person)>,
}

impl Fixture {
    pub fn person(&self, name: &str) -> &Person {
        &self.people.iter().find(|(_, p)| p.name == name).unwrap().1
    }
}

pub async fn person(app: &TestApp, admin: &Session, name: &'static str) -> Person {
    let session = app.member(admin, name).await;
    let me: Value = app
        .get("/api/v1/auth/me", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    Person {
        name,
        id: me["id"].as_str().unwrap().to_string(),
        token: session.token,
    }
}

pub async fn invite(app: &TestApp, by: &str, team: &str, username: &str, role: &str) -> Value {
    let response = app
        .post(
            &format!("/api/v1/teams/{team}/invitations"),
            Some(by),
            json!({"username": username, "role": role}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

pub async fn fixture(app: &TestApp) -> Fixture {
    let admin = app.setup_admin().await;
    let olive = person(app, &admin, "olive").await;
    let created = app
        .post("/api/v1/teams", Some(&olive.token), json!({"name": "Acme"}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let team: Value = created.json().await.unwrap();
    assert_eq!(team["role"], "owner");
    let team = team["id"].as_str().unwrap().to_string();
    let mut people = vec![(Some("owner"), olive)];
    for (name, role) in [("adam", "admin"), ("mia", "member"), ("vic", "viewer")] {
        let p = person(app, &admin, name).await;
        let invitation = invite(app, &people[0].1.token, &team, name, role).await;
        let token = invitation["token"].as_str().unwrap();
        let accepted = app
            .post(
                &format!("/api/v1/invitations/{token}/accept"),
                Some(&p.token),
                json!({}),
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::OK);
        let joined: Value = accepted.json().await.unwrap();
        assert_eq!(joined["role"], role);
        people.push((Some(role), p));
    }
    people.push((None, person(app, &admin, "otto").await));
    let project = create_in(app, &people[0].1.token, &team, "acme-web").await;
    let deployed = app
        .post(
            &format!("/api/v1/projects/{project}/deployments"),
            Some(&people[0].1.token),
            json!({}),
        )
        .await;
    assert_eq!(deployed.status(), StatusCode::ACCEPTED);
    let deployment = deployed.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    Fixture {
        admin,
        team,
        project,
        deployment,
        people,
    }
}

pub async fn create_in(app: &TestApp, token: &str, team: &str, name: &str) -> String {
    let response = app
        .post(
            "/api/v1/projects",
            Some(token),
            json!({"name": name, "git_url": "https://example.com/acme/web.git", "team_id": team}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let project: Value = response.json().await.unwrap();
    assert_eq!(project["team_id"], team);
    project["id"].as_str().unwrap().to_string()
}

/// A route on a project, deployment or team, as the OpenAPI document describes it.
struct Operation {
    method: Method,
    path: String,
    role: &'static str,
    scope: &'static str,
}

const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];
const SCOPES: [&str; 3] = ["read", "deploy", "admin"];

fn rank<const N: usize>(list: [&str; N], name: &str) -> usize {
    list.iter()
        .position(|r| *r == name)
        .unwrap_or_else(|| panic!("unknown role or scope {name}"))
}

/// Every operation whose path names a project, deployment or team by `{id}`. Each must state
/// its role and scope.
async fn resource_operations(app: &TestApp) -> Vec<Operation> {
    let doc: Value = app.openapi().await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let scoped = [
            "/api/v1/projects/{id}",
            "/api/v1/deployments/{id}",
            "/api/v1/teams/{id}",
        ]
        .iter()
        .any(|p| path.starts_with(p));
        if !scoped {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let names: Vec<&str> = op["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["bearer"].as_array())
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let find = |prefix: &str| {
                names
                    .iter()
                    .find_map(|n| n.strip_prefix(prefix))
                    .unwrap_or_else(|| panic!("{method} {path} states no {prefix}"))
                    .to_string()
            };
            let role = ROLES[rank(ROLES, &find("role:"))];
            let scope = SCOPES[rank(SCOPES, &find("scope:"))];
            out.push(Operation {
                method,
                path: path.clone(),
                role,
                scope,
            });
        }
    }
    assert!(out.len() >= 25, "only {} operations found", out.len());
    out
}

/// What a call did, as far as authorization goes.
#[derive(Debug, PartialEq)]
enum Outcome {
    Allowed,
    Forbidden,
    Hidden,
}

async fn outcome(response: reqwest::Response) -> (Outcome, u16) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let message = body["error"]["message"].as_str().unwrap_or("").to_string();
    let hidden = status == StatusCode::NOT_FOUND
        && [
            "project not found",
            "deployment not found",
            "team not found",
        ]
        .iter()
        .any(|m| message.starts_with(m));
    let o = if hidden {
        Outcome::Hidden
    } else if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        Outcome::Forbidden
    } else {
        Outcome::Allowed
    };
    (o, status.as_u16())
}

/// Sends `op` with ids filled in. Bodies carry an unknown field, so an allowed call stops at
/// validation (422) instead of changing anything; routes without a body act on things that do
/// not exist (a random member, domain or invitation) or on a throwaway project.
async fn call(
    app: &TestApp,
    f: &Fixture,
    op: &Operation,
    token: &str,
    project: &str,
) -> reqwest::Response {
    let random = uuid::Uuid::now_v7().to_string();
    let path = op
        .path
        .replace(
            "/api/v1/projects/{id}",
            &format!("/api/v1/projects/{project}"),
        )
        .replace(
            "/api/v1/deployments/{id}",
            &format!("/api/v1/deployments/{}", f.deployment),
        )
        .replace("/api/v1/teams/{id}", &format!("/api/v1/teams/{}", f.team))
        .replace("{domain}", "nothing.example.com")
        .replace("{user}", &random)
        .replace("{invitation}", &random);
    let body = match op.method {
        Method::GET | Method::DELETE => None,
        _ => Some(json!({"probe_field_no_route_knows": true})),
    };
    app.send(op.method.clone(), &path, Some(token), body).await
}

/// The newest audit entry, read by the instance admin.
pub async fn newest_audit(app: &TestApp, admin: &Session) -> Value {
    let list: Value = app
        .get("/api/v1/audit?limit=1", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    list[0].clone()
}

async fn expect(
    app: &TestApp,
    f: &Fixture,
    op: &Operation,
    who: &str,
    token: &str,
    want: Outcome,
    audited_as: Option<&str>,
) {
    let destructive = op.method == Method::DELETE && op.path == "/api/v1/projects/{id}";
    let project = if destructive && want == Outcome::Allowed {
        create_in(
            app,
            &f.person("olive").token,
            &f.team,
            &format!("tmp-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        )
        .await
    } else {
        f.project.clone()
    };
    let before = newest_audit(app, &f.admin).await["id"].as_i64();
    let (got, status) = outcome(call(app, f, op, token, &project).await).await;
    assert_eq!(
        got, want,
        "{} {} as {who}: status {status}",
        op.method, op.path
    );
    if op.method != Method::GET {
        let entry = newest_audit(app, &f.admin).await;
        assert!(
            entry["id"].as_i64() > before,
            "{} {} as {who} left no audit entry",
            op.method,
            op.path
        );
        assert_eq!(entry["status"], status, "{entry}");
        if let Some(name) = audited_as {
            assert_eq!(entry["actor"], name, "{entry}");
        }
    }
}

#[tokio::test]
async fn every_role_and_scope_gets_exactly_the_rights_openapi_states() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let ops = resource_operations(&app).await;
    let owner = f.person("olive");
    let mut tokens = Vec::new();
    for scope in SCOPES {
        let created = app
            .post(
                "/api/v1/tokens",
                Some(&owner.token),
                json!({"name": format!("ci-{scope}"), "scope": scope}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let body: Value = created.json().await.unwrap();
        tokens.push((scope, body["token"].as_str().unwrap().to_string()));
    }
    // An admin-scope token limited to another project of the team.
    let other = create_in(&app, &owner.token, &f.team, "acme-other").await;
    let limited: Value = app
        .post(
            "/api/v1/tokens",
            Some(&owner.token),
            json!({"name": "other-only", "scope": "admin", "project_ids": [other]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let limited = limited["token"].as_str().unwrap().to_string();

    for op in &ops {
        for (role, p) in &f.people {
            let want = match role {
                None => Outcome::Hidden,
                Some(r) if rank(ROLES, r) >= rank(ROLES, op.role) => Outcome::Allowed,
                Some(_) => Outcome::Forbidden,
            };
            expect(&app, &f, op, p.name, &p.token, want, Some(p.name)).await;
        }
        // Instance admins act as owners of every team.
        expect(
            &app,
            &f,
            op,
            "instance admin",
            &f.admin.token,
            Outcome::Allowed,
            Some("admin"),
        )
        .await;
        for (scope, token) in &tokens {
            let want = if rank(SCOPES, scope) >= rank(SCOPES, op.scope) {
                Outcome::Allowed
            } else {
                Outcome::Forbidden
            };
            expect(
                &app,
                &f,
                op,
                &format!("{scope} token"),
                token,
                want,
                Some("olive"),
            )
            .await;
        }
        if op.path.starts_with("/api/v1/projects/") || op.path.starts_with("/api/v1/deployments/") {
            expect(
                &app,
                &f,
                op,
                "token of another project",
                &limited,
                Outcome::Hidden,
                Some("olive"),
            )
            .await;
        }
    }
}

async fn ws_ack(app: &TestApp, token: &str, topics: &[String]) -> Vec<String> {
    let url = app.base.replace("http://", "ws://") + "/api/v1/ws";
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut send = async |v: Value| ws.send(Message::Text(v.to_string().into())).await.unwrap();
    send(json!({"op": "auth", "token": token})).await;
    for topic in topics {
        send(json!({"op": "subscribe", "topic": topic, "since": 0})).await;
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < topics.len() {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("an answer")
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        let (kind, topic) = (
            v["type"].as_str().unwrap_or(""),
            v["topic"].as_str().unwrap_or(""),
        );
        match kind {
            "subscribed" => answers.insert(topic.to_string(), "subscribed".to_string()),
            "error" => answers.insert(topic.to_string(), v["code"].as_str().unwrap().to_string()),
            _ => None,
        };
    }
    topics.iter().map(|t| answers[t].clone()).collect()
}

#[tokio::test]
async fn websocket_topics_follow_the_same_rule() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let topics = vec![
        format!("project:{}", f.project),
        format!("deployment:{}", f.deployment),
        format!("project:{}:metrics", f.project),
    ];
    for (role, p) in &f.people {
        let want = if role.is_some() {
            "subscribed"
        } else {
            "not_found"
        };
        let got = ws_ack(&app, &p.token, &topics).await;
        assert!(got.iter().all(|g| g == want), "{} got {got:?}", p.name);
    }
    // The system topic is for instance admins.
    let system = vec!["system".to_string()];
    assert_eq!(
        ws_ack(&app, &f.person("olive").token, &system).await,
        ["forbidden"]
    );
    assert_eq!(ws_ack(&app, &f.admin.token, &system).await, ["subscribed"]);
}

#[tokio::test]
async fn projects_are_listed_by_team_and_team_pages_follow_roles() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    // Each member lists the team's project; the outsider does not.
    for (role, p) in &f.people {
        let list: Value = app
            .get("/api/v1/projects", Some(&p.token))
            .await
            .json()
            .await
            .unwrap();
        let has = list
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == f.project.as_str());
        assert_eq!(has, role.is_some(), "{}", p.name);
        let teams: Value = app
            .get("/api/v1/teams", Some(&p.token))
            .await
            .json()
            .await
            .unwrap();
        let teams = teams.as_array().unwrap();
        assert_eq!(teams[0]["personal"], true, "personal team first");
        assert_eq!(
            teams.iter().any(|t| t["id"] == f.team.as_str()),
            role.is_some()
        );
    }
    // A member's own project goes to their personal team, out of the others' sight.
    let mia = f.person("mia");
    let own = app
        .create_project(
            &Session {
                token: mia.token.clone(),
                refresh: String::new(),
            },
            "mias-own",
        )
        .await;
    let olive = f.person("olive");
    let seen = app
        .get(
            &format!("/api/v1/projects/{}", own["id"].as_str().unwrap()),
            Some(&olive.token),
        )
        .await;
    assert_eq!(seen.status(), StatusCode::NOT_FOUND);
    // The team page lists members, owners first.
    let team: Value = app
        .get(
            &format!("/api/v1/teams/{}", f.team),
            Some(&f.person("vic").token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(team["role"], "viewer");
    let names: Vec<&str> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["olive", "adam", "mia", "vic"]);
    // Admins manage members below owner, never owners; the last owner cannot step down.
    let adam = f.person("adam");
    let to_owner = app
        .send(
            Method::PATCH,
            &format!("/api/v1/teams/{}/members/{}", f.team, mia.id),
            Some(&adam.token),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_error(to_owner, StatusCode::FORBIDDEN, "forbidden").await;
    let demote = app
        .send(
            Method::PATCH,
            &format!("/api/v1/teams/{}/members/{}", f.team, mia.id),
            Some(&adam.token),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(demote.status(), StatusCode::OK);
    let deploy = app
        .post(
            &format!("/api/v1/projects/{}/deployments", f.project),
            Some(&mia.token),
            json!({}),
        )
        .await;
    assert_error(deploy, StatusCode::FORBIDDEN, "forbidden").await;
    let last = app
        .send(
            Method::PATCH,
            &format!("/api/v1/teams/{}/members/{}", f.team, olive.id),
            Some(&olive.token),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_error(last, StatusCode::CONFLICT, "conflict").await;
    // Anyone may leave; a removed member loses the project at once.
    let leave = app
        .send(
            Method::DELETE,
            &format!("/api/v1/teams/{}/members/{}", f.team, mia.id),
            Some(&mia.token),
            None,
        )
        .await;
    assert_eq!(leave.status(), StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/api/v1/projects/{}", f.project), Some(&mia.token))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    // A team with projects cannot be deleted; a personal team cannot be shared.
    let del = app
        .send(
            Method::DELETE,
            &format!("/api/v1/teams/{}", f.team),
            Some(&olive.token),
            None,
        )
        .await;
    assert_error(del, StatusCode::CONFLICT, "conflict").await;
    let personal: Value = app
        .get("/api/v1/teams", Some(&olive.token))
        .await
        .json()
        .await
        .unwrap();
    let personal = personal[0]["id"].as_str().unwrap().to_string();
    let share = app
        .post(
            &format!("/api/v1/teams/{personal}/invitations"),
            Some(&olive.token),
            json!({"username": "mia", "role": "member"}),
        )
        .await;
    assert_error(share, StatusCode::CONFLICT, "conflict").await;
}

#[tokio::test]
async fn invitations_are_single_use_bound_to_their_user_and_expire() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let olive = f.person("olive");
    let otto = f.person("otto");
    let mia = f.person("mia");
    let accept = |token: String, by: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/v1/invitations/{token}/accept"),
                Some(&by),
                json!({}),
            )
            .await
        }
    };
    // Bound to otto: mia (already in) and the admin cannot use it.
    let inv = invite(&app, &olive.token, &f.team, "otto", "member").await;
    let token = inv["token"].as_str().unwrap().to_string();
    assert!(
        inv["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/invitations/{token}"))
    );
    assert_error(
        accept(token.clone(), mia.token.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        accept(token.clone(), f.admin.token.clone()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    // Once, by otto.
    assert_eq!(
        accept(token.clone(), otto.token.clone()).await.status(),
        StatusCode::OK
    );
    assert_error(
        accept(token.clone(), otto.token.clone()).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // A made-up token is unknown.
    assert_error(
        accept("shinv_nothing".into(), otto.token.clone()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Expired.
    let late = person(&app, &f.admin, "late").await;
    let inv = invite(&app, &olive.token, &f.team, "late", "viewer").await;
    let token = inv["token"].as_str().unwrap().to_string();
    expire_invitations(&app).await;
    assert_error(
        accept(token, late.token.clone()).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // Withdrawn.
    let inv = invite(&app, &olive.token, &f.team, "late", "viewer").await;
    let listed: Value = app
        .get(
            &format!("/api/v1/teams/{}/invitations", f.team),
            Some(&olive.token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i.get("token").is_none()),
        "{listed}"
    );
    let withdrawn = app
        .send(
            Method::DELETE,
            &format!(
                "/api/v1/teams/{}/invitations/{}",
                f.team,
                inv["id"].as_str().unwrap()
            ),
            Some(&olive.token),
            None,
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::NO_CONTENT);
    assert_error(
        accept(
            inv["token"].as_str().unwrap().to_string(),
            late.token.clone(),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Only owners invite owners; unknown users and bad roles are refused with the field.
    let adam = f.person("adam");
    let owner_inv = app
        .post(
            &format!("/api/v1/teams/{}/invitations", f.team),
            Some(&adam.token),
            json!({"username": "late", "role": "owner"}),
        )
        .await;
    assert_error(owner_inv, StatusCode::FORBIDDEN, "forbidden").await;
    assert_invalid(
        app.post(
            &format!("/api/v1/teams/{}/invitations", f.team),
            Some(&adam.token),
            json!({"username": "nobody", "role": "member"}),
        )
        .await,
        "username",
    )
    .await;
    assert_invalid(
        app.post(
            &format!("/api/v1/teams/{}/invitations", f.team),
            Some(&adam.token),
            json!({"username": "late", "role": "god"}),
        )
        .await,
        "role",
    )
    .await;
    // Members and viewers cannot invite at all.
    let by_mia = app
        .post(
            &format!("/api/v1/teams/{}/invitations", f.team),
            Some(&mia.token),
            json!({"username": "late", "role": "viewer"}),
        )
        .await;
    assert_error(by_mia, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn expire_invitations(app: &TestApp) {
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    execute_sql(
        app,
        "UPDATE invitations SET expires_at = $1",
        vec![past.into()],
    )
    .await;
}
