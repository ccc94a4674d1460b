//! What previews tell a pull request: one comment kept up to date (created once, then edited),
//! and a GitHub deployment of the head commit with its states (`in_progress`, `success`,
//! `failure`, `inactive` once the preview is gone) and the preview's URL.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{Github, GithubError, RepoName, json_of};

#[derive(Deserialize)]
struct Created {
    id: i64,
}

/// A deployment state as GitHub takes it.
pub struct DeploymentState<'a> {
    pub state: &'a str,
    pub environment_url: Option<&'a str>,
    pub log_url: &'a str,
    pub description: &'a str,
}

impl Github {
    /// Writes the pull request's comment: edits `existing`, or creates one (also when the
    /// old one was deleted); its id.
    pub async fn upsert_comment(
        &self,
        token: &str,
        repo: &RepoName,
        number: i32,
        existing: Option<i64>,
        body: &str,
    ) -> Result<i64, GithubError> {
        if let Some(id) = existing {
            let request = self
                .http
                .patch(self.url(&format!("/repos/{repo}/issues/comments/{id}")))
                .timeout(Duration::from_secs(10))
                .json(&json!({ "body": body }));
            match self.call(request, token).await {
                Ok(r) if r.status().is_success() => return Ok(id),
                Ok(r) => {
                    return Err(GithubError::Refused(format!(
                        "GitHub answered {} editing the comment",
                        r.status()
                    )));
                }
                Err(GithubError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let request = self
            .http
            .post(self.url(&format!("/repos/{repo}/issues/{number}/comments")))
            .timeout(Duration::from_secs(10))
            .json(&json!({ "body": body }));
        let created: Created = json_of(self.call(request, token).await?, "the comment").await?;
        Ok(created.id)
    }

    /// Creates a deployment of `sha` to `environment` (transient: it goes with the pull
    /// request); its id.
    pub async fn create_deployment(
        &self,
        token: &str,
        repo: &RepoName,
        sha: &str,
        environment: &str,
    ) -> Result<i64, GithubError> {
        let request = self
            .http
            .post(self.url(&format!("/repos/{repo}/deployments")))
            .timeout(Duration::from_secs(10))
            .json(&json!({
                "ref": sha,
                "environment": environment,
                "auto_merge": false,
                "required_contexts": [],
                "transient_environment": true,
                "production_environment": false,
                "description": "shard preview",
            }));
        let created: Created = json_of(self.call(request, token).await?, "the deployment").await?;
        Ok(created.id)
    }

    /// Adds a state to a deployment.
    pub async fn deployment_state(
        &self,
        token: &str,
        repo: &RepoName,
        deployment: i64,
        state: &DeploymentState<'_>,
    ) -> Result<(), GithubError> {
        let mut body = json!({
            "state": state.state,
            "log_url": state.log_url,
            "description": state.description,
            "auto_inactive": true,
        });
        if let Some(url) = state.environment_url {
            body["environment_url"] = json!(url);
        }
        let request = self
            .http
            .post(self.url(&format!("/repos/{repo}/deployments/{deployment}/statuses")))
            .timeout(Duration::from_secs(10))
            .json(&body);
        let response = self.call(request, token).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(GithubError::Refused(format!(
                "GitHub answered {} for the deployment state",
                response.status()
            )))
        }
    }
}
