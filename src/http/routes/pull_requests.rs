//! The pull-request side of the GitHub webhook (`/webhooks/github`, signed like a push):
//! `pull_request` deliveries drive previews, and an `issue_comment` of `/shard preview` on a
//! pull request by an owner, member or collaborator of the repository approves a fork's head
//! commit. See `crate::previews`.

use serde::Deserialize;
use uuid::Uuid;

use crate::db::{self, previews::PullRequest};
use crate::http::error::{AppError, AppResult};
use crate::model::WebhookOutcome;
use crate::state::AppState;

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: i32,
    pull_request: PullRequestBody,
}

#[derive(Deserialize)]
struct PullRequestBody {
    title: Option<String>,
    user: Option<Login>,
    head: Head,
    base: Base,
}

#[derive(Deserialize)]
struct Head {
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
    /// Gone when the fork was deleted.
    repo: Option<RepoBody>,
}

#[derive(Deserialize)]
struct Base {
    repo: Option<RepoBody>,
}

#[derive(Deserialize)]
struct RepoBody {
    full_name: String,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

#[derive(Deserialize)]
struct CommentEvent {
    action: String,
    issue: Issue,
    comment: Comment,
}

#[derive(Deserialize)]
struct Issue {
    number: i32,
    /// Present when the issue is a pull request.
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Comment {
    body: Option<String>,
    author_association: Option<String>,
    user: Option<Login>,
}

fn bad(e: serde_json::Error, what: &str) -> AppError {
    AppError::BadRequest(format!("the {what} payload is not what GitHub sends: {e}"))
}

type Handled = (WebhookOutcome, String, Option<Uuid>);

pub async fn pull_request(
    state: &AppState,
    project: &db::projects::Project,
    body: &[u8],
) -> AppResult<Handled> {
    let event: PullRequestEvent =
        serde_json::from_slice(body).map_err(|e| bad(e, "pull_request"))?;
    let pr = event.pull_request;
    if !super::webhooks::is_commit_sha(&pr.head.sha) {
        return Err(AppError::BadRequest(
            "'head.sha' is not a commit SHA".into(),
        ));
    }
    let base_repo = pr.base.repo.map(|r| r.full_name).unwrap_or_default();
    let head_repo = pr
        .head
        .repo
        .map(|r| r.full_name)
        .unwrap_or_else(|| "(deleted fork)".into());
    let fork = !head_repo.eq_ignore_ascii_case(&base_repo);
    let request = PullRequest {
        number: event.number,
        title: pr
            .title
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect(),
        author: pr.user.map(|u| u.login.chars().take(100).collect()),
        head_sha: pr.head.sha.to_ascii_lowercase(),
        head_ref: pr.head.git_ref.chars().take(255).collect(),
        head_repo: head_repo.chars().take(200).collect(),
        fork,
    };
    let outcome = state
        .previews
        .on_pull_request(project, &event.action, request)
        .await?;
    Ok(match outcome.deployed {
        Some(id) => {
            // Settled when its deployment ends (the reconciler would, later).
            state.previews.watch(project.clone(), id);
            (WebhookOutcome::Deployed, outcome.detail, Some(id))
        }
        None => (WebhookOutcome::Ignored, outcome.detail, None),
    })
}

/// Who may approve a fork's commit by comment.
const MAINTAINERS: &[&str] = &["OWNER", "MEMBER", "COLLABORATOR"];

pub async fn issue_comment(
    state: &AppState,
    project: &db::projects::Project,
    body: &[u8],
) -> AppResult<Handled> {
    let event: CommentEvent = serde_json::from_slice(body).map_err(|e| bad(e, "issue_comment"))?;
    let ignored = |why: String| Ok((WebhookOutcome::Ignored, why, None));
    let text = event.comment.body.unwrap_or_default();
    if event.action != "created" || event.issue.pull_request.is_none() {
        return ignored("not a new comment on a pull request".into());
    }
    if !text.trim_start().starts_with("/shard preview") {
        return ignored("the comment asks shard nothing".into());
    }
    let who = event.comment.user.map(|u| u.login).unwrap_or_default();
    let association = event.comment.author_association.unwrap_or_default();
    if !MAINTAINERS.contains(&association.as_str()) {
        return ignored(format!(
            "{who} ({association}) may not approve previews: owners, members and collaborators may"
        ));
    }
    let number = event.issue.number;
    match state.previews.approve(project, number).await {
        Ok(deployment) => {
            state.previews.watch(project.clone(), deployment.id);
            Ok((
                WebhookOutcome::Deployed,
                format!(
                    "#{number}: {who} approved the head commit; preview deployment {} queued",
                    deployment.id
                ),
                Some(deployment.id),
            ))
        }
        Err(crate::deploy::DeployError::NotFound(_)) => ignored(format!(
            "#{number} has no preview (opened before previews were on?)"
        )),
        Err(crate::deploy::DeployError::Conflict(why)) => ignored(format!("#{number}: {why}")),
        Err(e) => Err(e.into()),
    }
}
