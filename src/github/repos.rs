//! The repository side of GitHub's REST API: repositories and branches (following
//! `Link: rel="next"` up to `MAX_PAGES`), file contents, webhooks and commit statuses, and
//! `RepoName`, which keeps owner and name to GitHub's grammar.

use std::time::Duration;

use serde::Deserialize;

use super::{Github, GithubError, json_of};

/// Pages followed at most for one listing (100 items each).
pub const MAX_PAGES: usize = 20;

/// A commit status as GitHub takes it.
#[derive(Debug, serde::Serialize)]
pub struct CommitStatus<'a> {
    pub state: crate::model::CommitState,
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

    /// Creates the repository's webhook for pushes, pull requests and their comments (previews)
    /// (`POST /repos/{owner}/{repo}/hooks`); returns the hook's id.
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
                "events": ["push", "pull_request", "issue_comment"],
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
