//! GitHub: the OAuth web flow (oauth2 crate, PKCE, state bound to the browser by a cookie) and
//! the few REST calls shard makes. Base URLs come from `[github]`, so GitHub Enterprise Server
//! and the test suite's stand-in work the same. Tokens are only ever sent as headers.
//!
//! ## GitHub sign-in
//!
//! `/auth/github/start` redirects to GitHub with a random `state` and a PKCE challenge, both kept
//! only in a 10-minute HttpOnly, SameSite=Lax cookie scoped to `/api/v1/auth/github`, sealed with
//! the secret key (AES-GCM, fixed associated data) so the browser can neither read nor alter it.
//! A browser signed in when it starts (its refresh cookie reaches `/start`) is connecting: its user
//! id goes into the sealed cookie, because the SameSite=Strict refresh cookie does not come back
//! on GitHub's cross-site redirect. The callback compares `state` with the cookie in constant time
//! and clears the cookie in every answer, so a callback from another browser or a replay is
//! refused (400). Connecting links the GitHub account to that user (one linked to someone else is
//! a 409). Otherwise the linked user signs in (a new session, as a password login would make); an
//! unknown GitHub user is refused (403) unless `github.allow_signup`, which creates a member named
//! after the login with an unusable random password. `git_accounts` holds the login, the granted
//! scopes and the access token sealed with its row id as associated data; no API answer carries
//! it. Disconnect deletes the row, detaches the account's projects (they keep their repository;
//! connecting again reattaches them) and asks GitHub to revoke the grant, reporting (not failing
//! on) a refusal.
//!
//! Import (`POST /github/import {repo, branch?, dockerfile?, name?}`) reads the repository through
//! the account's token, checks the Dockerfile with the contents API, creates the project like
//! `POST /projects` does and ties it to the account (`projects.git_account_id`), so the pipeline
//! fetches it with that token as an HTTP header, and records the repository (`github_repo`). It
//! then creates the push webhook with the project's secret and records its id
//! (`github_hook_id`), or says `manual` with GitHub's reason when it cannot. `DELETE
//! /projects/{id}/github` (and deleting the project) deletes that webhook on GitHub and unties the
//! project.
//!
//! Commit statuses (`deploy/commit_status.rs`): every status change of a deployment passes
//! `notify::deployment_status`, which hands it to one posting task through a bounded queue
//! (1,024; past it a change is dropped and logged). For a project tied to a repository and a
//! deployment that knows its commit, the task posts `pending` (any running step), `success`
//! (live) or `failure` (failed, cancelled) to `POST /repos/{owner}/{repo}/statuses/{sha}` with
//! context `shard` and a link to the deployment's page, one at a time in the order they happened;
//! a state already posted, or `pending` after a final one, is skipped. The last state that arrived
//! is `deployments.commit_status`; a refusal (a token without the scope, GitHub away: 10 s
//! timeout) is `commit_status_error`, shown on the deployment and never failing the deploy.
//!
//! GitHub endpoints shard calls: `GET {web}/login/oauth/authorize` (the browser),
//! `POST {web}/login/oauth/access_token`, `GET /user`, `GET /user/repos`,
//! `GET /repos/{o}/{r}`, `GET /repos/{o}/{r}/branches`, `GET /repos/{o}/{r}/contents/{path}`,
//! `POST /repos/{o}/{r}/hooks`, `DELETE /repos/{o}/{r}/hooks/{id}`,
//! `POST /repos/{o}/{r}/statuses/{sha}`, `DELETE /applications/{client_id}/grant`.
//!
//!
//! ## GitHub push webhooks
//!
//! Each project has its own webhook secret: 32 random bytes, created on the first
//! `GET /projects/{id}/webhook`, sealed like env secrets with the project id as associated data.
//! `POST /webhooks/github?project=<id>` computes HMAC-SHA256 of the raw body and compares it with
//! `X-Hub-Signature-256` in constant time before anything else happens; an unknown project, a
//! project without a secret and a wrong or missing signature all get the same 401, and nothing is
//! stored. A verified delivery is inserted by its `X-GitHub-Delivery` id (unique), so a redelivery
//! or replay finds the row and does nothing. A push to `refs/heads/<branch>` queues a deployment
//! with trigger `push`, the pushed SHA, the head commit's first line and the pusher; other
//! branches, tags, deletions and other events are recorded as `ignored` with the reason. The
//! pipeline fetches a push deployment's commit by its id (`git::Revision::Commit`: gix's
//! single-revision clone, a protocol v2 `want` of that object at depth 1) and checks the checkout is
//! that commit, so a branch that moved on after the push does not change what is built; other
//! deployments fetch the branch tip. Deliveries are
//! kept `retention.webhook_deliveries_days`.

mod pulls;
mod repos;

pub use pulls::DeploymentState;
pub use repos::{Branch, CommitStatus, MAX_PAGES, Repo, RepoName, next_link};

use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;

use crate::config::GithubConfig;

/// What GitHub sign-in asks for: the user's repositories (private ones included) and their
/// webhooks, so import can list repositories, fetch private ones and create the push webhook.
pub const SCOPES: &[&str] = &["repo", "admin:repo_hook"];

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("GitHub sign-in is not configured (github.client_id and github.client_secret)")]
    NotConfigured,
    #[error("GitHub refused the sign-in: {0}")]
    Refused(String),
    #[error("cannot reach GitHub: {0}")]
    Unreachable(String),
    #[error("GitHub has no such repository, or the account cannot see it")]
    NotFound,
    #[error("GitHub refused the stored token; connect GitHub again")]
    TokenRejected,
}

/// An access token and the scopes GitHub granted.
pub struct Grant {
    pub token: String,
    pub scopes: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GithubUser {
    pub id: i64,
    pub login: String,
}

pub struct Github {
    config: GithubConfig,
    http: reqwest::Client,
}

impl Github {
    pub fn new(config: GithubConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("shard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { config, http })
    }

    pub fn enabled(&self) -> bool {
        self.config.oauth_app().is_some()
    }

    pub fn allow_signup(&self) -> bool {
        self.config.allow_signup
    }

    /// The OAuth client; `base` is the dashboard's external URL, where GitHub sends the
    /// browser back (`<base>/api/v1/auth/github/callback`).
    fn client(&self, base: &str) -> Result<Client, GithubError> {
        let (id, secret) = self.config.oauth_app().ok_or(GithubError::NotConfigured)?;
        let web = self.config.web();
        Ok(BasicClient::new(ClientId::new(id.to_string()))
            .set_client_secret(ClientSecret::new(secret.to_string()))
            .set_auth_uri(
                AuthUrl::new(format!("{web}/login/oauth/authorize"))
                    .map_err(|e| GithubError::Refused(e.to_string()))?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{web}/login/oauth/access_token"))
                    .map_err(|e| GithubError::Refused(e.to_string()))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(format!("{base}/api/v1/auth/github/callback"))
                    .map_err(|e| GithubError::Refused(e.to_string()))?,
            ))
    }

    /// The authorize URL to send the browser to, with the state and PKCE verifier to keep in
    /// the browser's cookie until it comes back.
    pub fn authorize(&self, base: &str) -> Result<(String, String, String), GithubError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client(base)?
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.iter().map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .url();
        Ok((
            url.to_string(),
            state.secret().clone(),
            verifier.secret().clone(),
        ))
    }

    /// Trades the code GitHub sent back for an access token.
    pub async fn exchange(
        &self,
        base: &str,
        code: &str,
        verifier: &str,
    ) -> Result<Grant, GithubError> {
        let http = |request: oauth2::HttpRequest| self.send(request);
        let token = self
            .client(base)?
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::Request(e) => GithubError::Unreachable(e.to_string()),
                other => GithubError::Refused(other.to_string()),
            })?;
        let scopes = token
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        Ok(Grant {
            token: token.access_token().secret().clone(),
            scopes,
        })
    }

    /// oauth2's HTTP requests, sent with shard's reqwest client.
    async fn send(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let mut builder = self
            .http
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| HttpError(e.to_string()))?;
        let mut out = oauth2::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HttpError(e.to_string()))?;
        out.body(bytes.to_vec())
            .map_err(|e| HttpError(e.to_string()))
    }

    /// `GET /user`: who the token belongs to.
    pub async fn user(&self, token: &str) -> Result<GithubUser, GithubError> {
        let response = self.call(self.http.get(self.url("/user")), token).await?;
        json_of(response, "GET /user").await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api())
    }

    /// One REST call made with `token`: GitHub's JSON media type and API version, and the same
    /// meaning everywhere for a transport failure, a rejected token (401) and a 404.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<reqwest::Response, GithubError> {
        let response = with_api_headers(request.bearer_auth(token))
            .send()
            .await
            .map_err(|e| GithubError::Unreachable(e.to_string()))?;
        match response.status().as_u16() {
            401 => Err(GithubError::TokenRejected),
            404 => Err(GithubError::NotFound),
            _ => Ok(response),
        }
    }

    /// Revokes the app's grant for `token` (`DELETE /applications/{client_id}/grant`, basic
    /// auth with the app's credentials). GitHub answers 204.
    pub async fn revoke(&self, token: &str) -> Result<(), GithubError> {
        let (id, secret) = self.config.oauth_app().ok_or(GithubError::NotConfigured)?;
        let request = self
            .http
            .delete(self.url(&format!("/applications/{id}/grant")))
            .basic_auth(id, Some(secret));
        let response = with_api_headers(request)
            .json(&serde_json::json!({ "access_token": token }))
            .send()
            .await
            .map_err(|e| GithubError::Unreachable(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(GithubError::Refused(format!(
                "revoking the grant answered {}",
                response.status()
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// Seals an account's access token at rest (AES-GCM, the account's row id as associated data).
pub fn seal_token(sealer: &crate::secrets::Sealer, account: uuid::Uuid, token: &str) -> Vec<u8> {
    sealer.seal(token.as_bytes(), account.as_bytes())
}

/// An account's access token in clear.
pub fn open_token(
    sealer: &crate::secrets::Sealer,
    account: &crate::db::git_accounts::GitAccount,
) -> anyhow::Result<String> {
    let clear = sealer
        .open(&account.access_token_sealed, account.id.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot open the GitHub token: {e:?}"))?;
    String::from_utf8(clear).map_err(|_| anyhow::anyhow!("the GitHub token is not UTF-8"))
}

fn with_api_headers(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
}

/// A successful answer's JSON body; anything else is GitHub refusing, in words.
async fn json_of<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, GithubError> {
    if !response.status().is_success() {
        return Err(GithubError::Refused(format!(
            "GitHub answered {} for {what}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| GithubError::Refused(format!("unexpected answer for {what}: {e}")))
}
