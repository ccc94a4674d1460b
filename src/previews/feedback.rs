//! What a pull request shows of its preview: one comment, edited in place as the preview
//! moves (awaiting approval, deploying, live with its URL, failed with its log, closed), and a
//! GitHub deployment per deployed head commit (`in_progress`, then `success` with the
//! preview's URL or `failure`; `inactive` once closed). Only for projects linked to GitHub
//! through an account (the token); a failure is logged and never stops the preview.

use super::{Previews, short};
use crate::db::{self, previews::Change, previews::Preview, projects::Project};
use crate::github::{DeploymentState, RepoName};
use crate::model::PreviewState;

impl Previews {
    /// Tells the pull request where its preview stands.
    pub(super) async fn tell(&self, project: &Project, row: &Preview, child: Option<&Project>) {
        if let Err(e) = self.try_tell(project, row, child).await {
            tracing::warn!(project = %project.id, pr = row.pr_number, error = %e, "cannot update the pull request");
        }
    }

    async fn try_tell(
        &self,
        project: &Project,
        row: &Preview,
        child: Option<&Project>,
    ) -> anyhow::Result<()> {
        let (Some(account), Some(repo)) = (project.git_account_id, project.github_repo.as_deref())
        else {
            return Ok(());
        };
        let repo = RepoName::parse(repo)
            .ok_or_else(|| anyhow::anyhow!("the project's GitHub repository name is not valid"))?;
        let account = db::git_accounts::find(&self.db, account)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the GitHub account is no longer connected"))?;
        let token = crate::github::open_token(&self.sealer, &account)?;
        let url = child.map(|c| self.deployer.app_url(&c.slug));
        let log = match (child, row.deployment_id) {
            (Some(c), Some(d)) => format!("{}/projects/{}/deployments/{d}", self.base, c.id),
            _ => format!("{}/projects/{}/previews", self.base, project.id),
        };
        let mut change = Change::default();
        // The GitHub deployment of the head commit.
        let deployment = match row.state {
            PreviewState::Deploying => {
                let environment = format!("pr-{}", row.pr_number);
                let id = self
                    .github
                    .create_deployment(&token, &repo, &row.head_sha, &environment)
                    .await?;
                change.gh_deployment_id = Some(Some(id));
                Some((id, "in_progress"))
            }
            PreviewState::Live => row.gh_deployment_id.map(|id| (id, "success")),
            PreviewState::Failed => row.gh_deployment_id.map(|id| (id, "failure")),
            PreviewState::Closed => row.gh_deployment_id.map(|id| (id, "inactive")),
            PreviewState::AwaitingApproval => None,
        };
        if let Some((id, state)) = deployment {
            let description = match row.state {
                PreviewState::Live => "Preview live",
                PreviewState::Failed => "Preview deploy failed",
                PreviewState::Closed => "Preview removed",
                _ => "Deploying the preview",
            };
            let state = DeploymentState {
                state,
                environment_url: url.as_deref().filter(|_| row.state == PreviewState::Live),
                log_url: &log,
                description,
            };
            self.github
                .deployment_state(&token, &repo, id, &state)
                .await?;
        }
        let body = comment(row, url.as_deref(), &log);
        let id = self
            .github
            .upsert_comment(&token, &repo, row.pr_number, row.comment_id, &body)
            .await?;
        if row.comment_id != Some(id) {
            change.comment_id = Some(Some(id));
        }
        if (change.comment_id.is_some() || change.gh_deployment_id.is_some())
            && let Some(fresh) = db::previews::by_id(&self.db, row.id).await?
        {
            db::previews::change(&self.db, fresh, change).await?;
        }
        Ok(())
    }
}

/// The comment's text for the preview as it stands.
fn comment(row: &Preview, url: Option<&str>, log: &str) -> String {
    let sha = short(&row.head_sha);
    let state = match row.state {
        PreviewState::AwaitingApproval => format!(
            "⏸ Waiting for approval: this pull request comes from a fork, so nothing is built until a maintainer approves commit `{sha}` — comment `/shard preview`, or press Approve on the project's Previews tab."
        ),
        PreviewState::Deploying => format!("⏳ Deploying commit `{sha}` — [build log]({log})"),
        PreviewState::Live => format!(
            "✅ Live: {} (commit `{sha}`) — [build log]({log})",
            url.unwrap_or("-")
        ),
        PreviewState::Failed => {
            format!("❌ The deploy of commit `{sha}` failed — [build log]({log})")
        }
        PreviewState::Closed => format!("🗑 Removed ({}).", row.note.as_deref().unwrap_or("closed")),
    };
    format!("**shard preview** of #{}\n\n{state}\n", row.pr_number)
}
