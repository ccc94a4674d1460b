//! Commit statuses: a deployment of a project imported from GitHub reports its state on the
//! deployed commit (`pending` while it runs, then `success` or `failure`), linking to the
//! deployment's page. One task posts them in the order the statuses happened; a post that
//! fails is recorded on the deployment and never touches the deploy itself.

use crate::model::CommitState;
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::DeploymentStatus as S;
use crate::db::{self, Db, deployments::Deployment};
use crate::github::{CommitStatus, Github, RepoName};
use crate::secrets::Sealer;

/// Status changes waiting to be posted; past this many, new ones are dropped (and logged)
/// rather than let a GitHub outage grow memory.
const QUEUE: usize = 1024;

/// The `context` GitHub shows next to the status.
const CONTEXT: &str = "shard";

/// The handle deploys report status changes through.
/// The posting loop before it runs: what it needs and the queue it reads.
type Unstarted = (Poster, mpsc::Receiver<(Uuid, S)>);

#[derive(Clone)]
pub struct CommitStatuses {
    sender: mpsc::Sender<(Uuid, S)>,
    /// The posting loop until app.rs takes it to run under the supervisor.
    poster: Arc<std::sync::Mutex<Option<Unstarted>>>,
}

/// What the posting task needs.
pub struct Poster {
    pub db: Db,
    pub sealer: Arc<Sealer>,
    pub github: Arc<Github>,
    /// The dashboard's external URL, for the link to the deployment.
    pub base: String,
}

impl CommitStatuses {
    /// The queue; nothing is posted until the loop `take_poster` hands out runs.
    pub fn new(poster: Poster) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Self {
            sender,
            poster: Arc::new(std::sync::Mutex::new(Some((poster, receiver)))),
        }
    }

    /// The posting loop, once (it owns the queue's receiving end); it ends when every handle
    /// is dropped.
    pub fn take_poster(&self) -> Option<impl std::future::Future<Output = ()> + Send + use<>> {
        let (poster, receiver) = self
            .poster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        Some(poster.run(receiver))
    }

    /// Queues a status change for posting; never waits.
    pub fn report(&self, deployment: Uuid, status: S) {
        if github_state(status).is_none() {
            return;
        }
        if self.sender.try_send((deployment, status)).is_err() {
            tracing::warn!(%deployment, status = status.as_str(), "commit status queue full; not posted");
        }
    }
}

/// The GitHub state a deployment status is reported as, if any.
fn github_state(status: S) -> Option<CommitState> {
    match status {
        S::Queued | S::Fetching | S::Building | S::Starting | S::HealthChecking => {
            Some(CommitState::Pending)
        }
        S::Live => Some(CommitState::Success),
        S::Failed | S::Cancelled => Some(CommitState::Failure),
        S::Superseded | S::Stopped => None,
    }
}

fn is_commit_id(sha: &str) -> bool {
    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A GitHub description is at most 140 characters.
fn description(status: S, deployment: &Deployment) -> String {
    let text = match status {
        S::Live => "Deployed: live".to_string(),
        S::Cancelled => "Deploy cancelled".to_string(),
        S::Failed => match &deployment.error {
            Some(e) => format!("Deploy failed: {e}"),
            None => "Deploy failed".to_string(),
        },
        other => format!("Deploying ({})", other.as_str().replace('_', " ")),
    };
    if text.chars().count() > 140 {
        text.chars().take(139).chain(['…']).collect()
    } else {
        text
    }
}

impl Poster {
    async fn run(self, mut receiver: mpsc::Receiver<(Uuid, S)>) {
        while let Some((id, status)) = receiver.recv().await {
            if let Err(e) = self.post(id, status).await {
                tracing::warn!(deployment = %id, error = %e, "cannot post the commit status");
                if let Err(e) =
                    db::deployments::set_commit_status(&self.db, id, None, Some(&e.to_string()))
                        .await
                {
                    tracing::warn!(deployment = %id, error = %e, "cannot record the commit status failure");
                }
            }
        }
    }

    /// Posts one status when the deployment's project is tied to a GitHub repository and the
    /// deployment knows its commit. A `pending` after a final state, or a state already
    /// posted, is skipped, so GitHub sees each state once and in order.
    async fn post(&self, id: Uuid, status: S) -> anyhow::Result<()> {
        let Some(state) = github_state(status) else {
            return Ok(());
        };
        let Some(deployment) = db::deployments::find(&self.db, id).await? else {
            return Ok(());
        };
        let Some(sha) = deployment.commit_sha.as_deref().filter(|s| is_commit_id(s)) else {
            return Ok(());
        };
        match deployment.commit_status {
            Some(posted) if posted == state => return Ok(()),
            Some(CommitState::Success | CommitState::Failure) if state == CommitState::Pending => {
                return Ok(());
            }
            _ => {}
        }
        let Some(project) = db::projects::find(&self.db, deployment.project_id).await? else {
            return Ok(());
        };
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
        let target_url = format!(
            "{}/projects/{}/deployments/{}",
            self.base, project.id, deployment.id
        );
        let description = description(status, &deployment);
        let body = CommitStatus {
            state,
            target_url: &target_url,
            description: &description,
            context: CONTEXT,
        };
        self.github.post_status(&token, &repo, sha, &body).await?;
        db::deployments::set_commit_status(&self.db, id, Some(state), None).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_running_status_is_pending_and_every_end_is_success_or_failure() {
        for s in [
            S::Queued,
            S::Fetching,
            S::Building,
            S::Starting,
            S::HealthChecking,
        ] {
            assert_eq!(github_state(s).map(CommitState::as_str), Some("pending"));
        }
        assert_eq!(
            github_state(S::Live).map(CommitState::as_str),
            Some("success")
        );
        assert_eq!(
            github_state(S::Failed).map(CommitState::as_str),
            Some("failure")
        );
        assert_eq!(
            github_state(S::Cancelled).map(CommitState::as_str),
            Some("failure")
        );
        assert_eq!(github_state(S::Superseded), None);
        assert_eq!(github_state(S::Stopped), None);
    }

    #[test]
    fn only_full_commit_ids_are_posted_to() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(!is_commit_id(&"a".repeat(39)));
        assert!(!is_commit_id(&format!("{}/", "a".repeat(39))));
    }
}
