//! GitHub: the OAuth web flow (oauth2 crate, PKCE, state bound to the browser by a cookie) and
//! the few REST calls shard makes. Base URLs come from `[github]`, so GitHub Enterprise Server
//! and the test suite's stand-in work the same. Tokens are only ever sent as headers.

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

/// Pages followed at most for one listing (100 items each).
pub const MAX_PAGES: usize = 20;

/// A commit status as GitHub takes it: `state` is `pending`, `success`, `failure` or `error`.
#[derive(Debug, serde::Serialize)]
pub struct CommitStatus<'a> {
    pub state: &'a str,
    pub target_url: &'a str,
    pub description: &'a str,
    pub context: &'a str,
}

/// A repository's `owner/name`, both parts checked against GitHub's name grammar (letters,
/// digits, `-`, `_`, `.`), so it can go into an API path as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub owner: String,
    pub name: String,
}

impl RepoName {
    pub fn new(owner: &str, name: &str) -> Option<Self> {
        fn ok(s: &str) -> bool {
            !s.is_empty()
                && s.len() <= 100
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        }
        (ok(owner) && ok(name)).then(|| Self {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }

    /// `owner/name`.
    pub fn parse(full: &str) -> Option<Self> {
        let (owner, name) = full.split_once('/')?;
        Self::new(owner, name)
    }

    pub fn valid_part(s: &str) -> bool {
        Self::new(s, "x").is_some()
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, utoipa::ToSchema)]
pub struct Repo {
    pub full_name: String,
    pub name: String,
    pub private: bool,
    pub default_branch: Option<String>,
    pub clone_url: String,
    pub html_url: String,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct BranchItem {
    name: String,
    commit: BranchCommit,
}

#[derive(Debug, Clone, Deserialize)]
struct BranchCommit {
    sha: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Branch {
    pub name: String,
    pub commit_sha: String,
}

/// The `rel="next"` URL of a `Link` header, if any.
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

impl Github {
    /// Every item of a paginated listing, following `Link: rel="next"` (at most `MAX_PAGES`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        first: String,
    ) -> Result<Vec<T>, GithubError> {
        let mut items = Vec::new();
        let mut url = Some(first);
        let api = self.config.api().to_string();
        for _ in 0..MAX_PAGES {
            let Some(next) = url.take() else { break };
            // A next link must stay on the API host (the token goes with it).
            if !next.starts_with(&api) {
                return Err(GithubError::Refused(format!(
                    "GitHub pointed the next page elsewhere: {next}"
                )));
            }
            let response = self.call(self.http.get(&next), token).await?;
            url = next_link(response.headers().get("link").and_then(|v| v.to_str().ok()));
            let page: Vec<T> = json_of(response, &next).await?;
            items.extend(page);
        }
        Ok(items)
    }

    /// The repositories the token's user can reach (owned, collaborating, organisations).
    pub async fn repos(&self, token: &str) -> Result<Vec<Repo>, GithubError> {
        let first =
            self.url("/user/repos?per_page=100&sort=updated&affiliation=owner,collaborator,organization_member");
        self.list(token, first).await
    }

    /// `GET /repos/{owner}/{repo}`.
    pub async fn repo(&self, token: &str, repo: &RepoName) -> Result<Repo, GithubError> {
        let path = format!("/repos/{repo}");
        let response = self.call(self.http.get(self.url(&path)), token).await?;
        json_of(response, &path).await
    }

    /// Whether `path` exists on `branch` (`GET /repos/{owner}/{repo}/contents/{path}?ref=`).
    pub async fn file_exists(
        &self,
        token: &str,
        repo: &RepoName,
        path: &str,
        branch: &str,
    ) -> Result<bool, GithubError> {
        let path: String = path
            .trim_start_matches('/')
            .split('/')
            .map(|seg| url::form_urlencoded::byte_serialize(seg.as_bytes()).collect::<String>())
            .collect::<Vec<_>>()
            .join("/");
        let branch: String = url::form_urlencoded::byte_serialize(branch.as_bytes()).collect();
        let url = self.url(&format!("/repos/{repo}/contents/{path}?ref={branch}"));
        match self.call(self.http.get(url), token).await {
            Ok(r) if r.status().is_success() => Ok(true),
            Ok(r) => Err(GithubError::Refused(format!(
                "GitHub answered {} for the Dockerfile check",
                r.status()
            ))),
            Err(GithubError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the repository's push webhook (`POST /repos/{owner}/{repo}/hooks`); returns
    /// the hook's id.
    pub async fn create_hook(
        &self,
        token: &str,
        repo: &RepoName,
        url: &str,
        secret: &str,
    ) -> Result<i64, GithubError> {
        #[derive(Deserialize)]
        struct Created {
            id: i64,
        }
        let request = self
            .http
            .post(self.url(&format!("/repos/{repo}/hooks")))
            .json(&serde_json::json!({
                "name": "web",
                "active": true,
                "events": ["push"],
                "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            }));
        // GitHub answers 404 (not 403) when the token lacks the hook scope.
        match self.call(request, token).await {
            Ok(r) if r.status().is_success() => {
                Ok(json_of::<Created>(r, "creating the webhook").await?.id)
            }
            Ok(r) => Err(GithubError::Refused(format!(
                "creating the webhook answered {} (the token may lack admin:repo_hook)",
                r.status()
            ))),
            Err(GithubError::NotFound) => Err(GithubError::Refused(
                "the token may lack admin:repo_hook".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// Gives a webhook shard created a new secret (`PATCH /repos/{owner}/{repo}/hooks/{id}`).
    pub async fn update_hook_secret(
        &self,
        token: &str,
        repo: &RepoName,
        id: i64,
        url: &str,
        secret: &str,
    ) -> Result<(), GithubError> {
        let request = self
            .http
            .patch(self.url(&format!("/repos/{repo}/hooks/{id}")))
            .json(&serde_json::json!({
                "config": {"url": url, "content_type": "json", "secret": secret, "insecure_ssl": "0"},
            }));
        match self.call(request, token).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(GithubError::Refused(format!(
                "updating the webhook answered {}",
                r.status()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Deletes a webhook shard created (`DELETE /repos/{owner}/{repo}/hooks/{id}`); one
    /// already gone counts as deleted.
    pub async fn delete_hook(
        &self,
        token: &str,
        repo: &RepoName,
        id: i64,
    ) -> Result<(), GithubError> {
        let request = self
            .http
            .delete(self.url(&format!("/repos/{repo}/hooks/{id}")));
        match self.call(request, token).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(GithubError::Refused(format!(
                "deleting the webhook answered {}",
                r.status()
            ))),
            Err(GithubError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Posts a commit status (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    pub async fn post_status(
        &self,
        token: &str,
        repo: &RepoName,
        sha: &str,
        status: &CommitStatus<'_>,
    ) -> Result<(), GithubError> {
        let request = self
            .http
            .post(self.url(&format!("/repos/{repo}/statuses/{sha}")))
            .timeout(Duration::from_secs(10))
            .json(status);
        match self.call(request, token).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(GithubError::Refused(format!(
                "GitHub answered {} (the token may lack repo:status)",
                r.status()
            ))),
            // GitHub hides what a token may not write behind a 404.
            Err(GithubError::NotFound) => Err(GithubError::Refused(
                "GitHub answered 404 (the token may lack repo:status, or the commit is not there)"
                    .into(),
            )),
            Err(e) => Err(e),
        }
    }

    pub async fn branches(&self, token: &str, repo: &RepoName) -> Result<Vec<Branch>, GithubError> {
        let first = self.url(&format!("/repos/{repo}/branches?per_page=100"));
        let items: Vec<BranchItem> = self.list(token, first).await?;
        Ok(items
            .into_iter()
            .map(|b| Branch {
                name: b.name,
                commit_sha: b.commit.sha,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_read_from_link_headers() {
        let header = r#"<https://api.github.com/user/repos?page=3>; rel="next", <https://api.github.com/user/repos?page=5>; rel="last""#;
        assert_eq!(
            next_link(Some(header)).as_deref(),
            Some("https://api.github.com/user/repos?page=3")
        );
        let last = r#"<https://api.github.com/user/repos?page=1>; rel="prev", <https://api.github.com/user/repos?page=1>; rel="first""#;
        assert_eq!(next_link(Some(last)), None);
        assert_eq!(next_link(None), None);
    }

    #[test]
    fn repository_names_follow_githubs_grammar() {
        let ok = RepoName::parse("acme/app.js").unwrap();
        assert_eq!(ok.to_string(), "acme/app.js");
        for bad in [
            "acme", "acme/", "/app", "acme/..", "acme/a b", "acme/a/b", "a%2f/b",
        ] {
            assert_eq!(RepoName::parse(bad), None, "{bad}");
        }
    }
}
