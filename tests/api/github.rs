//! GitHub sign-in against a stand-in that speaks the parts of GitHub's OAuth web flow and REST
//! API shard uses, with GitHub's paths, parameters and JSON shapes: `/login/oauth/authorize`
//! (approves at once as the stand-in's current user), `/login/oauth/access_token` (checks the
//! client credentials, the single-use code, the redirect URI and the PKCE verifier),
//! `GET /user` and `DELETE /applications/{client_id}/grant`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const CLIENT_ID: &str = "Iv1.standin";
const CLIENT_SECRET: &str = "standin-client-secret";

#[derive(Default)]
pub(crate) struct Hub {
    /// Who "signs in" at the authorize page next: (GitHub id, login).
    current: Option<(i64, String)>,
    /// code → (user, PKCE challenge, redirect URI)
    codes: HashMap<String, ((i64, String), String, String)>,
    tokens: HashMap<String, (i64, String)>,
    revoked: Vec<String>,
    issued: Vec<String>,
    /// Full names of the repositories every user can see, newest first.
    repos: Vec<String>,
    /// Clone URLs of repositories really served (by the test git server).
    clone_urls: HashMap<String, String>,
    /// The access token the next code exchange hands out (default: a random one).
    next_token: Option<String>,
    /// Webhooks created: (repository, payload URL, secret); a hook's id is its index + 1.
    pub(crate) hooks: Vec<(String, String, String)>,
    /// Webhooks deleted: (repository, id).
    deleted_hooks: Vec<(String, i64)>,
    /// Commit statuses posted: (repository, commit, body).
    pub(crate) statuses: Vec<(String, String, Value)>,
    /// Answer status posts as GitHub does for a token without the scope (404).
    refuse_statuses: bool,
    /// Pull-request comments: (repository, issue number, body), a comment's id is its index + 1;
    /// edits replace the body.
    pub(crate) comments: Vec<(String, i64, String)>,
    /// Deployments: (repository, commit, environment), id = index + 1.
    pub(crate) deployments: Vec<(String, String, String)>,
    /// Deployment states: (deployment id, state, environment URL).
    pub(crate) deployment_states: Vec<(i64, String, Option<String>)>,
}

type Shared = web::Data<Arc<Mutex<Hub>>>;

fn client_ok(req: &HttpRequest, form: &HashMap<String, String>) -> bool {
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let decode = |s: &str| {
        url::form_urlencoded::parse(s.as_bytes())
            .map(|(k, _)| k.into_owned())
            .next()
            .unwrap_or_default()
    };
    match basic.as_deref().and_then(|b| b.split_once(':')) {
        Some((id, secret)) => decode(id) == CLIENT_ID && decode(secret) == CLIENT_SECRET,
        None => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    }
}

async fn authorize(hub: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let q = query.into_inner();
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    let scope = q.get("scope").cloned().unwrap_or_default();
    assert!(scope.contains("repo"), "scope {scope}");
    let mut hub = hub.lock().unwrap();
    let user = hub.current.clone().expect("a current user");
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let redirect = q["redirect_uri"].clone();
    hub.codes.insert(
        code.clone(),
        (user, q["code_challenge"].clone(), redirect.clone()),
    );
    let mut url = url::Url::parse(&redirect).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    HttpResponse::Found()
        .insert_header(("location", url.to_string()))
        .finish()
}

async fn access_token(
    hub: Shared,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    // GitHub answers errors with 200 and an `error` field.
    let error = |e: &str| HttpResponse::Ok().json(json!({"error": e, "error_description": e}));
    if !client_ok(&req, &form) {
        return error("incorrect_client_credentials");
    }
    let mut hub = hub.lock().unwrap();
    let Some((user, challenge, redirect)) = form.get("code").and_then(|c| hub.codes.remove(c))
    else {
        return error("bad_verification_code");
    };
    if form.get("redirect_uri") != Some(&redirect) {
        return error("redirect_uri_mismatch");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        return error("invalid_grant");
    }
    let token = hub
        .next_token
        .take()
        .unwrap_or_else(|| format!("gho_{}", uuid::Uuid::new_v4().simple()));
    hub.tokens.insert(token.clone(), user);
    hub.issued.push(token.clone());
    HttpResponse::Ok().json(
        json!({"access_token": token, "token_type": "bearer", "scope": "repo,admin:repo_hook"}),
    )
}

async fn user(hub: Shared, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("token ")))
        .unwrap_or("");
    let hub = hub.lock().unwrap();
    match hub.tokens.get(token) {
        Some((id, login)) => HttpResponse::Ok().json(json!({
            "login": login, "id": id, "type": "User", "site_admin": false,
            "name": "Test User", "html_url": format!("https://github.com/{login}"),
        })),
        None => HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"})),
    }
}

async fn revoke_grant(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> HttpResponse {
    if path.as_str() != CLIENT_ID || !client_ok(&req, &HashMap::new()) {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    let token = body["access_token"].as_str().unwrap_or("").to_string();
    let mut hub = hub.lock().unwrap();
    hub.tokens.remove(&token);
    hub.revoked.push(token);
    HttpResponse::NoContent().finish()
}

fn bearer(req: &HttpRequest) -> String {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("token ")))
        .unwrap_or("")
        .to_string()
}

/// A page of a listing with GitHub's `Link` header (`next`, `last`).
fn page_of(req: &HttpRequest, all: Vec<Value>) -> HttpResponse {
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(30)
        .min(100);
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let pages = all.len().div_ceil(per_page).max(1);
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let info = req.connection_info();
    let link_to = |n: usize| {
        let mut q = query.clone();
        q.insert("page".into(), n.to_string());
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        format!("<{}://{}{}?{}>", info.scheme(), info.host(), req.path(), qs)
    };
    let mut response = HttpResponse::Ok();
    if page < pages {
        response.insert_header((
            "link",
            format!(
                "{}; rel=\"next\", {}; rel=\"last\"",
                link_to(page + 1),
                link_to(pages)
            ),
        ));
    }
    response.json(items)
}

async fn user_repos(hub: Shared, req: HttpRequest) -> HttpResponse {
    let hub = hub.lock().unwrap();
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let all = hub
        .repos
        .iter()
        .map(|full| repo_json(full, hub.clone_urls.get(full)))
        .collect();
    page_of(&req, all)
}

async fn repo_branches(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let hub = hub.lock().unwrap();
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (owner, repo) = path.into_inner();
    if !hub.repos.contains(&format!("{owner}/{repo}")) {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    let all = (0..3)
        .map(|i| json!({"name": if i == 0 { "main".to_string() } else { format!("feature-{i}") },
            "commit": {"sha": format!("{i:040}"), "url": "https://api.github.com/x"}, "protected": false}))
        .collect();
    page_of(&req, all)
}

fn repo_json(full: &str, clone_url: Option<&String>) -> Value {
    let name = full.split('/').nth(1).unwrap();
    json!({"name": name, "full_name": full, "private": name.starts_with("secret") || clone_url.is_some(),
        "default_branch": "main",
        "clone_url": clone_url.cloned().unwrap_or_else(|| format!("https://github.com/{full}.git")),
        "html_url": format!("https://github.com/{full}"), "updated_at": "2026-11-23T12:00:00Z",
        "owner": {"login": full.split('/').next().unwrap()}})
}

async fn one_repo(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let hub = hub.lock().unwrap();
    let full = format!("{}/{}", path.0, path.1);
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    if !hub.repos.contains(&full) {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    HttpResponse::Ok().json(repo_json(&full, hub.clone_urls.get(&full)))
}

async fn contents(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let hub = hub.lock().unwrap();
    let (owner, repo, file) = path.into_inner();
    let query: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let served = hub.clone_urls.contains_key(&format!("{owner}/{repo}"));
    if served && file == "Dockerfile" && query.get("ref").map(String::as_str) == Some("main") {
        HttpResponse::Ok().json(json!({"type": "file", "name": "Dockerfile", "path": "Dockerfile"}))
    } else {
        HttpResponse::NotFound().json(json!({"message": "Not Found"}))
    }
}

async fn create_hook(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    assert_eq!(
        body["events"],
        json!(["push", "pull_request", "issue_comment"])
    );
    assert_eq!(body["config"]["content_type"], "json");
    let full = format!("{}/{}", path.0, path.1);
    let url = body["config"]["url"].as_str().unwrap().to_string();
    let secret = body["config"]["secret"].as_str().unwrap().to_string();
    hub.hooks.push((full, url, secret));
    HttpResponse::Created().json(json!({"id": hub.hooks.len(), "active": true}))
}

async fn delete_hook(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, i64)>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (owner, repo, id) = path.into_inner();
    let full = format!("{owner}/{repo}");
    let exists = id >= 1 && hub.hooks.get(id as usize - 1).is_some_and(|h| h.0 == full);
    if !exists || hub.deleted_hooks.contains(&(full.clone(), id)) {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    hub.deleted_hooks.push((full, id));
    HttpResponse::NoContent().finish()
}

fn authorized(hub: &Hub, req: &HttpRequest) -> bool {
    hub.tokens.contains_key(&bearer(req))
}

/// `POST /repos/{owner}/{repo}/issues/{number}/comments`.
async fn create_comment(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, i64)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !authorized(&hub, &req) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (owner, repo, number) = path.into_inner();
    let Some(text) = body["body"].as_str() else {
        return HttpResponse::UnprocessableEntity().json(json!({"message": "Validation Failed"}));
    };
    hub.comments
        .push((format!("{owner}/{repo}"), number, text.to_string()));
    HttpResponse::Created().json(json!({"id": hub.comments.len(), "body": text}))
}

/// `PATCH /repos/{owner}/{repo}/issues/comments/{id}`.
async fn edit_comment(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, usize)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !authorized(&hub, &req) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (owner, repo, id) = path.into_inner();
    let full = format!("{owner}/{repo}");
    match hub.comments.get_mut(id.wrapping_sub(1)) {
        Some(c) if c.0 == full => {
            c.2 = body["body"].as_str().unwrap_or_default().to_string();
            HttpResponse::Ok().json(json!({"id": id, "body": c.2}))
        }
        _ => HttpResponse::NotFound().json(json!({"message": "Not Found"})),
    }
}

/// `POST /repos/{owner}/{repo}/deployments`, with GitHub's required fields.
async fn create_deployment(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !authorized(&hub, &req) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (Some(sha), Some(environment)) = (body["ref"].as_str(), body["environment"].as_str())
    else {
        return HttpResponse::UnprocessableEntity().json(json!({"message": "Validation Failed"}));
    };
    let full = format!("{}/{}", path.0, path.1);
    hub.deployments
        .push((full, sha.to_string(), environment.to_string()));
    HttpResponse::Created().json(json!({"id": hub.deployments.len(), "sha": sha}))
}

/// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
async fn create_deployment_state(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, i64)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !authorized(&hub, &req) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (_, _, id) = path.into_inner();
    let state = body["state"].as_str().unwrap_or_default().to_string();
    let states = [
        "error",
        "failure",
        "inactive",
        "in_progress",
        "queued",
        "pending",
        "success",
    ];
    if id < 1 || id as usize > hub.deployments.len() || !states.contains(&state.as_str()) {
        return HttpResponse::UnprocessableEntity().json(json!({"message": "Validation Failed"}));
    }
    let url = body["environment_url"].as_str().map(str::to_string);
    hub.deployment_states.push((id, state.clone(), url));
    HttpResponse::Created().json(json!({"state": state}))
}

/// `POST /repos/{owner}/{repo}/statuses/{sha}`, with GitHub's validation of the body.
async fn create_status(
    hub: Shared,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    body: web::Json<Value>,
) -> HttpResponse {
    let mut hub = hub.lock().unwrap();
    if !hub.tokens.contains_key(&bearer(&req)) {
        return HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"}));
    }
    let (owner, repo, sha) = path.into_inner();
    let full = format!("{owner}/{repo}");
    if hub.refuse_statuses || !hub.repos.contains(&full) {
        return HttpResponse::NotFound().json(json!({"message": "Not Found"}));
    }
    let body = body.into_inner();
    let state = body["state"].as_str().unwrap_or("").to_string();
    let description = body["description"].as_str().unwrap_or("");
    if !["pending", "success", "failure", "error"].contains(&state.as_str())
        || description.chars().count() > 140
        || sha.len() != 40
    {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"message": "Validation Failed", "body": body}));
    }
    hub.statuses.push((full, sha, body.clone()));
    HttpResponse::Created().json(json!({"id": hub.statuses.len(), "state": state,
        "context": body["context"], "target_url": body["target_url"]}))
}

pub(crate) struct StandIn {
    base: String,
    pub(crate) hub: Arc<Mutex<Hub>>,
}

impl StandIn {
    fn start() -> StandIn {
        let repos = (0..130)
            .map(|i| {
                if i == 7 {
                    "acme/secret-api".to_string()
                } else {
                    format!("acme/app-{i:03}")
                }
            })
            .collect();
        let hub = Arc::new(Mutex::new(Hub {
            repos,
            ..Hub::default()
        }));
        let data = web::Data::new(hub.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/login/oauth/authorize", web::get().to(authorize))
                .route("/login/oauth/access_token", web::post().to(access_token))
                .route("/user", web::get().to(user))
                .route("/user/repos", web::get().to(user_repos))
                .route(
                    "/repos/{owner}/{repo}/branches",
                    web::get().to(repo_branches),
                )
                .route("/repos/{owner}/{repo}", web::get().to(one_repo))
                .route(
                    "/repos/{owner}/{repo}/contents/{path:.*}",
                    web::get().to(contents),
                )
                .route("/repos/{owner}/{repo}/hooks", web::post().to(create_hook))
                .route(
                    "/repos/{owner}/{repo}/hooks/{id}",
                    web::delete().to(delete_hook),
                )
                .route(
                    "/repos/{owner}/{repo}/statuses/{sha}",
                    web::post().to(create_status),
                )
                .route(
                    "/repos/{owner}/{repo}/issues/{number}/comments",
                    web::post().to(create_comment),
                )
                .route(
                    "/repos/{owner}/{repo}/issues/comments/{id}",
                    web::patch().to(edit_comment),
                )
                .route(
                    "/repos/{owner}/{repo}/deployments",
                    web::post().to(create_deployment),
                )
                .route(
                    "/repos/{owner}/{repo}/deployments/{id}/statuses",
                    web::post().to(create_deployment_state),
                )
                .route(
                    "/applications/{client_id}/grant",
                    web::delete().to(revoke_grant),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        StandIn {
            base: format!("http://127.0.0.1:{port}"),
            hub,
        }
    }

    fn sign_in_as(&self, id: i64, login: &str) {
        self.hub.lock().unwrap().current = Some((id, login.to_string()));
    }
}

async fn spawn(standin: &StandIn, signup: bool) -> TestApp {
    spawn_with(standin, signup, |_| {}).await
}

/// An app signing in with the stand-in, with `adjust` applied to the rest of its config.
async fn spawn_with(
    standin: &StandIn,
    signup: bool,
    adjust: impl FnOnce(&mut shard::config::Config) + Send + 'static,
) -> TestApp {
    let base = standin.base.clone();
    spawn_app_with(move |c| {
        c.github.client_id = Some(CLIENT_ID.into());
        c.github.client_secret = Some(shard::config::Secret::new(CLIENT_SECRET));
        c.github.web_url = base.clone();
        c.github.api_url = base;
        c.github.allow_signup = signup;
        adjust(c);
    })
    .await
}

/// The whole dance for the stand-in's current user, ending signed in.
async fn github_session(app: &TestApp) -> Session {
    let (url, cookie) = to_callback(app).await;
    let done = callback(app, &url, &[("shard_github_oauth", &cookie)]).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let refresh = set_cookie(&done, "shard_refresh").expect("a session");
    session_of(app.refresh_with(&refresh).await).await
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The browser's side of the dance, up to the callback URL GitHub sends it back to; returns
/// that URL and the state cookie shard set.
async fn to_callback(app: &TestApp) -> (String, String) {
    to_callback_signed_in(app, None).await
}

/// As `to_callback`, from a browser signed in with `refresh` (its refresh cookie reaches
/// `/start`, and only `/start`: GitHub's redirect back is cross-site).
async fn to_callback_signed_in(app: &TestApp, refresh: Option<&str>) -> (String, String) {
    let mut start = app.client.get(app.url("/api/v1/auth/github/start"));
    if let Some(refresh) = refresh {
        start = start.header("cookie", format!("shard_refresh={refresh}"));
    }
    let start = start.send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let cookie = set_cookie(&start, "shard_github_oauth").expect("state cookie");
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let back = app.client.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    (
        back.headers()["location"].to_str().unwrap().to_string(),
        cookie,
    )
}

async fn callback(app: &TestApp, url: &str, cookies: &[(&str, &str)]) -> reqwest::Response {
    let cookie = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    app.client
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn github_sign_in_refuses_bad_state_and_new_users_when_sign_up_is_off() {
    let standin = StandIn::start();
    let app = spawn(&standin, false).await;
    let admin = app.setup_admin().await;
    let providers: Value = app
        .get("/api/v1/auth/providers", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(providers, json!({"github": true}));
    standin.sign_in_as(583231, "octocat");

    // A callback without this browser's cookie, or with another state, is refused.
    let (url, cookie) = to_callback(&app).await;
    let stolen = callback(&app, &url, &[]).await;
    assert_error(stolen, StatusCode::BAD_REQUEST, "bad_request").await;
    let forged = url.replace("state=", "state=x");
    let wrong = callback(&app, &forged, &[("shard_github_oauth", &cookie)]).await;
    assert_error(wrong, StatusCode::BAD_REQUEST, "bad_request").await;

    // Sign-up is off: a GitHub user without a shard account is refused, and no user appears.
    let refused = callback(&app, &url, &[("shard_github_oauth", &cookie)]).await;
    let body = assert_error(refused, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-up with GitHub is off")
    );
    let users: Vec<Value> = app
        .get("/api/v1/users", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    // The same callback again (a replay): the code was used, nothing signs in.
    let replay = callback(&app, &url, &[("shard_github_oauth", &cookie)]).await;
    assert_ne!(replay.status(), StatusCode::FOUND);

    // A state cookie altered in the browser is refused.
    let (url, cookie) = to_callback(&app).await;
    let mut altered = cookie.clone().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let tampered = callback(&app, &url, &[("shard_github_oauth", &altered)]).await;
    assert_error(tampered, StatusCode::BAD_REQUEST, "bad_request").await;

    // Connect while signed in: the admin links octocat, then octocat signs in as the admin.
    // The refresh cookie goes to /start only, as a browser sends it (SameSite=Strict).
    let (url, cookie) = to_callback_signed_in(&app, Some(&admin.refresh)).await;
    let linked = callback(&app, &url, &[("shard_github_oauth", &cookie)]).await;
    assert_eq!(linked.status(), StatusCode::FOUND);
    assert_eq!(linked.headers()["location"], "/account?github=connected");
    let view: Value = app
        .get("/api/v1/auth/github", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        view,
        json!({"enabled": true, "connected": true, "login": "octocat", "scopes": "repo,admin:repo_hook"})
    );

    let (url, cookie) = to_callback(&app).await;
    let signed_in = callback(&app, &url, &[("shard_github_oauth", &cookie)]).await;
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    assert_eq!(signed_in.headers()["location"], "/");
    let refresh = set_cookie(&signed_in, "shard_refresh").expect("a session");
    let session = session_of(app.refresh_with(&refresh).await).await;
    let me: Value = app
        .get("/api/v1/auth/me", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "admin");

    // Disconnect: the link is gone and the grant revoked at GitHub.
    let gone = app
        .send(
            reqwest::Method::DELETE,
            "/api/v1/auth/github",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(gone.status(), StatusCode::OK);
    assert_eq!(
        gone.json::<Value>().await.unwrap()["revoke_error"],
        Value::Null
    );
    let hub = standin.hub.lock().unwrap();
    assert_eq!(
        hub.revoked.last(),
        hub.issued.last(),
        "the newest token was revoked"
    );
}

#[tokio::test]
async fn github_sign_up_creates_a_member_and_keeps_the_token_sealed() {
    let standin = StandIn::start();
    let app = spawn(&standin, true).await;
    let admin = app.setup_admin().await;
    standin.sign_in_as(1, "Mona");
    let (url, cookie) = to_callback(&app).await;
    let signed_up = callback(&app, &url, &[("shard_github_oauth", &cookie)]).await;
    assert_eq!(signed_up.status(), StatusCode::FOUND);
    // The state cookie is cleared on the way out.
    assert_eq!(
        set_cookie(&signed_up, "shard_github_oauth").as_deref(),
        Some("")
    );
    let refresh = set_cookie(&signed_up, "shard_refresh").unwrap();
    let mona = session_of(app.refresh_with(&refresh).await).await;
    let me: Value = app
        .get("/api/v1/auth/me", Some(&mona.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("mona"), Some("member"))
    );

    // The token is in no API answer and not in the database file in clear.
    let token = standin.hub.lock().unwrap().issued.last().cloned().unwrap();
    for path in ["/api/v1/auth/github", "/api/v1/auth/me"] {
        let text = app.get(path, Some(&mona.token)).await.text().await.unwrap();
        assert!(!text.contains(&token), "{path} shows the token");
    }
    if std::env::var("SHARD_TEST_DATABASE_URL").is_err() {
        let db = std::fs::read(app.dir.path().join("shard.db")).unwrap();
        assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
        let wal = app.dir.path().join("shard.db-wal");
        if let Ok(wal) = std::fs::read(wal) {
            assert!(!wal.windows(token.len()).any(|w| w == token.as_bytes()));
        }
    }
    let users: Vec<Value> = app
        .get("/api/v1/users", Some(&admin.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 2);
}

#[tokio::test]
async fn github_routes_say_when_sign_in_is_not_configured() {
    let app = spawn_app().await;
    let start = app.get("/api/v1/auth/github/start", None).await;
    assert_error(start, StatusCode::NOT_FOUND, "not_found").await;
    let providers: Value = app
        .get("/api/v1/auth/providers", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(providers, json!({"github": false}));
}

#[tokio::test]
async fn repositories_are_listed_across_pages_with_their_branches() {
    let standin = StandIn::start();
    let app = spawn(&standin, true).await;
    let admin = app.setup_admin().await;
    // Not connected yet: a clear 409.
    let early = app.get("/api/v1/github/repos", Some(&admin.token)).await;
    assert_error(early, StatusCode::CONFLICT, "conflict").await;

    standin.sign_in_as(9, "builder");
    let user = github_session(&app).await;

    // 130 repositories: two pages of 100, all returned in GitHub's order.
    let all: Vec<Value> = app
        .get("/api/v1/github/repos", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 130);
    assert_eq!(all[0]["full_name"], "acme/app-000");
    assert_eq!(all[129]["full_name"], "acme/app-129");
    let secret: Vec<&Value> = all.iter().filter(|r| r["private"] == true).collect();
    assert_eq!(secret.len(), 1);
    assert_eq!(secret[0]["full_name"], "acme/secret-api");
    let found: Vec<Value> = app
        .get("/api/v1/github/repos?q=APP-12", Some(&user.token))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = found
        .iter()
        .map(|r| r["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "acme/app-120",
            "acme/app-121",
            "acme/app-122",
            "acme/app-123",
            "acme/app-124",
            "acme/app-125",
            "acme/app-126",
            "acme/app-127",
            "acme/app-128",
            "acme/app-129"
        ]
    );

    let branches: Vec<Value> = app
        .get(
            "/api/v1/github/repos/acme/secret-api/branches",
            Some(&user.token),
        )
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = branches
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "feature-1", "feature-2"]);
    assert_eq!(branches[0]["commit_sha"].as_str().unwrap().len(), 40);
    let missing = app
        .get("/api/v1/github/repos/acme/nope/branches", Some(&user.token))
        .await;
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
    let bad = app
        .get(
            "/api/v1/github/repos/acme/bad%20name/branches",
            Some(&user.token),
        )
        .await;
    assert_invalid(bad, "repo").await;

    // A token GitHub no longer accepts: say so, in words.
    standin.hub.lock().unwrap().tokens.clear();
    let stale = app.get("/api/v1/github/repos", Some(&user.token)).await;
    let body = assert_error(stale, StatusCode::CONFLICT, "conflict").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("connect GitHub again"),
        "{body}"
    );
}

/// A private repository `acme/<name>` on a git server that accepts only the account's token
/// (as GitHub does), offered by the stand-in, and a signed-in GitHub user of an app that may
/// fetch from loopback.
pub(crate) struct Private {
    pub(crate) token: String,
    pub(crate) served: crate::gitserver::Repo,
    pub(crate) standin: StandIn,
    pub(crate) app: TestApp,
    pub(crate) dev: Session,
    pub(crate) _git: crate::gitserver::GitServer,
}

pub(crate) async fn private_repo(name: &str, version: &str) -> Private {
    let token = format!("gho_{name}_{}", uuid::Uuid::new_v4().simple());
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let git = crate::gitserver::GitServer::start_with_auth(Some(format!("Basic {basic}"))).await;
    let served = git.repo(name, &crate::deploy::app_files(version, ""));
    let standin = StandIn::start();
    {
        let full = format!("acme/{name}");
        let mut hub = standin.hub.lock().unwrap();
        hub.repos.insert(0, full.clone());
        hub.clone_urls.insert(full, served.url.clone());
        hub.next_token = Some(token.clone());
    }
    let app = spawn_with(&standin, true, |c| {
        // The test's git server is on loopback; the importing user is a member.
        c.git.allow_private_networks = true;
        c.deploy.grace_secs = 0;
    })
    .await;
    app.setup_admin().await;
    standin.sign_in_as(42, "dev");
    let dev = github_session(&app).await;
    Private {
        token,
        served,
        standin,
        app,
        dev,
        _git: git,
    }
}

#[tokio::test]
async fn importing_a_private_repository_checks_its_dockerfile_creates_the_webhook_and_deploys() {
    let Private {
        token,
        served,
        standin,
        app,
        dev,
        _git,
    } = private_repo("private-app", "imported").await;

    let bad = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "no-slash"}),
        )
        .await;
    assert_invalid(bad, "repo").await;
    let unknown = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "acme/none"}),
        )
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;

    // A wrong Dockerfile path is said before any deploy.
    let elsewhere = app
        .post("/api/v1/github/import", Some(&dev.token), json!({"repo": "acme/private-app", "name": "elsewhere", "dockerfile": "docker/Dockerfile"}))
        .await;
    let status = elsewhere.status();
    let body: Value = elsewhere.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["dockerfile_found"], false);

    let imported = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "acme/private-app"}),
        )
        .await;
    assert_eq!(imported.status(), StatusCode::CREATED);
    let imported: Value = imported.json().await.unwrap();
    assert_eq!(imported["private"], true);
    assert_eq!(imported["dockerfile_found"], true);
    assert_eq!(imported["webhook"], "created", "{imported}");
    let project = imported["project"]["id"].as_str().unwrap().to_string();
    assert_eq!(imported["project"]["name"], "private-app");
    assert_eq!(imported["project"]["git_url"], served.url.as_str());
    assert!(!imported.to_string().contains(&token));

    // The webhook GitHub got is the project's, with its secret.
    let hook: Value = app
        .get(
            &format!("/api/v1/projects/{project}/webhook"),
            Some(&dev.token),
        )
        .await
        .json()
        .await
        .unwrap();
    {
        let hub = standin.hub.lock().unwrap();
        let (repo, url, secret) = hub.hooks.last().unwrap();
        assert_eq!(repo, "acme/private-app");
        assert_eq!(url, hook["url"].as_str().unwrap());
        assert_eq!(secret, hook["secret"].as_str().unwrap());
    }

    // The private repository deploys with the account's token (as a header; the server
    // refuses anything else) and the token shows up nowhere in the log.
    let id = app.deploy(&dev, &project, json!({})).await;
    let live = app
        .wait_for(
            &dev,
            &id,
            &["live", "failed", "cancelled"],
            std::time::Duration::from_secs(120),
        )
        .await;
    assert_eq!(live["status"], "live", "{live}");
    let upstream = live["upstream"].as_str().unwrap();
    let page = crate::deploy::get_page(upstream, "/").await.unwrap().1;
    assert_eq!(page, "version imported\n");
    assert!(!app.logs_text(&dev, &id).await.contains(&token));
}

#[tokio::test]
async fn a_changed_git_url_unlinks_the_github_account_and_never_gets_its_token() {
    let Private {
        token,
        standin,
        app,
        dev,
        _git,
        ..
    } = private_repo("linked-app", "linked").await;
    let imported: Value = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "acme/linked-app"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let project = imported["project"]["id"].as_str().unwrap().to_string();
    let catcher = crate::tenants::Catcher::start();
    let moved = app
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/projects/{project}"),
            Some(&dev.token),
            Some(json!({"git_url": format!("{}/acme/linked-app.git", catcher.base)})),
        )
        .await;
    let status = moved.status();
    let body: Value = moved.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["github"].is_null(), "{body}");
    // The old repository's push webhook went with the link.
    assert_eq!(standin.hub.lock().unwrap().deleted_hooks.len(), 1);

    let id = app.deploy(&dev, &project, json!({})).await;
    let done = app
        .wait_for(
            &dev,
            &id,
            crate::helpers::FINAL,
            std::time::Duration::from_secs(60),
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    let (requests, with_credentials) = catcher.requests();
    assert!(requests > 0, "the fetch never reached the new URL");
    assert_eq!(
        with_credentials, 0,
        "the account's token went to another host"
    );
    assert!(
        !catcher
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.contains(&token))
    );
}

/// Everything shard logs, at debug level, while the test runs (nextest runs each test in its
/// own process, so this test's subscriber is the process's).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .try_init()
        .expect("this test's log capture is the process's only subscriber");
    buffer
}

/// Every row of every table as text (Postgres), to look for a value stored in clear.
async fn postgres_rows_as_text(app: &TestApp) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.state.db;
    let tables = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .unwrap();
    let mut all = String::new();
    for row in tables {
        let table: String = row.try_get("", "tablename").unwrap();
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT t::text AS row FROM \"{table}\" t"),
            ))
            .await
            .unwrap();
        for row in rows {
            all.push_str(&row.try_get::<String>("", "row").unwrap());
            all.push('\n');
        }
    }
    all
}

/// The commit statuses the stand-in got for `sha`, once `count` have arrived.
async fn statuses_for(standin: &StandIn, sha: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got: Vec<Value> = standin
            .hub
            .lock()
            .unwrap()
            .statuses
            .iter()
            .filter(|(_, s, _)| s == sha)
            .map(|(_, _, body)| body.clone())
            .collect();
        if got.len() >= count || std::time::Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn signed_pushes_to_an_imported_repository_deploy_and_report_commit_statuses_in_order() {
    use std::time::Duration;
    let logs = capture_logs();
    let Private {
        token,
        served,
        standin,
        app,
        dev,
        _git,
    } = private_repo("status-app", "one").await;
    let imported: Value = app
        .post(
            "/api/v1/github/import",
            Some(&dev.token),
            json!({"repo": "acme/status-app"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(imported["webhook"], "created", "{imported}");
    let project = imported["project"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        imported["project"]["github"],
        json!({"repo": "acme/status-app", "webhook": "created", "connected": true})
    );
    let (hook_url, secret) = {
        let hub = standin.hub.lock().unwrap();
        let (_, url, secret) = hub.hooks.last().unwrap().clone();
        (url, secret)
    };
    // GitHub would deliver to the public URL; here that is the test server itself.
    let deliver = |event: &'static str, delivery: String, body: Value| {
        let (app, url, secret) = (&app, hook_url.clone(), secret.clone());
        async move {
            crate::webhooks::deliver_signed(&app.client, &url, &secret, event, &delivery, &body)
                .await
        }
    };
    let push = |before: &str, after: &str, message: &str| {
        crate::webhooks::push_payload("refs/heads/main", before, after, false, message)
    };

    // A push deploys the pushed commit; GitHub sees pending, then success, linking the
    // deployment's page.
    let first = served.commit(&crate::deploy::app_files("one", ""), "noop");
    let second = served.commit(&crate::deploy::app_files("two", ""), "version two");
    let accepted = deliver("push", "st-1".into(), push(&first, &second, "version two")).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = accepted.json::<Value>().await.unwrap()["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let live = app
        .wait_for(&dev, &id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(live["status"], "live", "{live}");
    assert_eq!(live["commit_sha"], second.as_str());
    let page = crate::deploy::get_page(live["upstream"].as_str().unwrap(), "/")
        .await
        .unwrap()
        .1;
    assert_eq!(page, "version two\n");
    let posted = statuses_for(&standin, &second, 2).await;
    let states: Vec<&str> = posted
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "success"], "{posted:?}");
    for body in &posted {
        assert_eq!(body["context"], "shard");
        assert!(
            body["target_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/projects/{project}/deployments/{id}")),
            "{body}"
        );
    }
    // The state is recorded once GitHub has answered, a moment after the stand-in saw it.
    let view = app
        .deployment_when(&dev, &id, Duration::from_secs(20), |v| {
            v["commit_status"] != "pending"
        })
        .await;
    assert_eq!(view["commit_status"], "success", "{view}");
    assert_eq!(view["commit_status_error"], Value::Null);

    // A push whose build fails: pending, then failure with the reason.
    let broken = served.commit(
        &crate::deploy::app_files("three", "RUN [\"/bin/busybox\", \"false\"]\n"),
        "broken build",
    );
    let accepted = deliver(
        "push",
        "st-2".into(),
        push(&second, &broken, "broken build"),
    )
    .await;
    let failed_id = accepted.json::<Value>().await.unwrap()["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed = app
        .wait_for(&dev, &failed_id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let posted = statuses_for(&standin, &broken, 2).await;
    let states: Vec<&str> = posted
        .iter()
        .map(|b| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["pending", "failure"], "{posted:?}");
    assert!(
        posted[1]["description"]
            .as_str()
            .unwrap()
            .starts_with("Deploy failed"),
        "{posted:?}"
    );

    // GitHub refusing the status (a token without the scope) is recorded; the deploy goes on.
    standin.hub.lock().unwrap().refuse_statuses = true;
    let fixed = served.commit(&crate::deploy::app_files("four", ""), "fixed");
    let accepted = deliver("push", "st-3".into(), push(&broken, &fixed, "fixed")).await;
    let fixed_id = accepted.json::<Value>().await.unwrap()["deployment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let fixed_live = app
        .wait_for(&dev, &fixed_id, FINAL, Duration::from_secs(120))
        .await;
    assert_eq!(fixed_live["status"], "live", "{fixed_live}");
    let view = app
        .deployment_when(&dev, &fixed_id, Duration::from_secs(20), |v| {
            v["commit_status_error"].is_string()
        })
        .await;
    assert!(
        view["commit_status_error"]
            .as_str()
            .unwrap_or("")
            .contains("404"),
        "{view}"
    );
    assert!(statuses_for(&standin, &fixed, 0).await.is_empty());

    // The token is in no API answer, no build log, no log line and no database column.
    let mut answers = String::new();
    for path in [
        "/api/v1/auth/github".to_string(),
        "/api/v1/auth/me".to_string(),
        "/api/v1/projects".to_string(),
        format!("/api/v1/projects/{project}"),
        format!("/api/v1/projects/{project}/deployments"),
        format!("/api/v1/projects/{project}/webhook"),
        format!("/api/v1/projects/{project}/webhook/deliveries"),
        format!("/api/v1/projects/{project}/env"),
        format!("/api/v1/deployments/{id}"),
        "/api/v1/github/repos?q=status".to_string(),
    ] {
        let response = app.get(&path, Some(&dev.token)).await;
        assert!(response.status().is_success(), "{path}");
        answers.push_str(&response.text().await.unwrap());
    }
    for deployment in [&id, &failed_id, &fixed_id] {
        answers.push_str(&app.logs_text(&dev, deployment).await);
    }
    assert!(!answers.contains(&token), "an API answer shows the token");
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("cannot post the commit status"),
        "the capture sees shard's log"
    );
    assert!(!logged.contains(&token), "a log line shows the token");
    if std::env::var("SHARD_TEST_DATABASE_URL").is_ok() {
        let rows = postgres_rows_as_text(&app).await;
        assert!(rows.contains("acme/status-app"), "the dump sees the data");
        assert!(!rows.contains(&token), "a column holds the token in clear");
    } else {
        for file in ["shard.db", "shard.db-wal"] {
            if let Ok(bytes) = std::fs::read(app.dir.path().join(file)) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{file} holds the token in clear"
                );
            }
        }
    }

    // Unlinking the project deletes the webhook shard created and stops the statuses.
    let unlinked = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{project}/github"),
            Some(&dev.token),
            None,
        )
        .await;
    assert_eq!(unlinked.status(), StatusCode::OK);
    let body: Value = unlinked.json().await.unwrap();
    assert_eq!(body["webhook_error"], Value::Null, "{body}");
    assert_eq!(
        standin.hub.lock().unwrap().deleted_hooks,
        [("acme/status-app".to_string(), 1)]
    );
    let view: Value = app
        .get(&format!("/api/v1/projects/{project}"), Some(&dev.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["github"], Value::Null);
    let again = app
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/projects/{project}/github"),
            Some(&dev.token),
            None,
        )
        .await;
    assert_error(again, StatusCode::NOT_FOUND, "not_found").await;
}
