//! Pull-request previews. A project with previews on gets, for each open pull request, a
//! child project (`pr-<number>-<slug>`) deploying the pull request's head commit; the proxy,
//! the pipeline, certificates and project removal treat it as any project.
//!
//! - **Lifecycle**: `opened`, `reopened` and `synchronize` deliveries deploy the head commit
//!   (`deploy`); `closed` removes the child project with its containers, image and routes
//!   (`close`). The reconciler (`reconcile`, every `previews.reconcile_secs` on the leader,
//!   and at start) closes previews whose project turned previews off or that are older than
//!   the project's `ttl_days`, removes child projects no open preview owns, and settles the
//!   state of previews whose deploy ended while nobody watched (a restart).
//! - **Forks** never build on their own: a maintainer approves one head commit (`approve`: a
//!   `/shard preview` comment from an owner, member or collaborator, or the dashboard). A new
//!   push to a fork's pull request waits for approval again.
//! - **Secrets**: a preview gets its parent's plain variables and only the secrets marked
//!   `preview` (`deploy::env::for_project`), never its attached databases.
//! - **Limits**: at most the project's `max` open previews (the oldest is closed first), and
//!   at most `previews.memory_mb` / `cpu_millis` each.
//! - **Feedback** (`feedback.rs`): one pull-request comment edited in place, and a GitHub
//!   deployment of the head commit with its states; the commit status comes from the
//!   child's deployments as for any GitHub project.

mod feedback;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cluster::leader::Leadership;
use crate::config::Config;
use crate::db::{
    self, Db, deployments::Deployment, previews::Change, previews::Preview, previews::PullRequest,
    projects::Project,
};
use crate::deploy::{DeployError, Deployer, Pushed};
use crate::github::Github;
use crate::model::{DeploymentStatus, PreviewState};
use crate::secrets::Sealer;

/// Why a preview closed when its pull request did (approving it then is refused).
const PR_CLOSED: &str = "the pull request was closed";

/// What `Previews::new` takes.
pub struct Parts {
    pub db: Db,
    pub deployer: Arc<Deployer>,
    pub github: Arc<Github>,
    pub sealer: Arc<Sealer>,
    pub config: Arc<Config>,
    /// The dashboard's external URL (links in comments).
    pub base: String,
}

pub struct Previews {
    db: Db,
    deployer: Arc<Deployer>,
    github: Arc<Github>,
    sealer: Arc<Sealer>,
    config: Arc<Config>,
    base: String,
}

/// What a delivery did, for the webhook's answer.
pub struct Outcome {
    pub deployed: Option<Uuid>,
    pub detail: String,
}

/// The slug of a pull request's preview of `slug` (63 characters at most).
pub fn child_slug(number: i32, slug: &str) -> String {
    let prefix = format!("pr-{number}-");
    let room = 63usize.saturating_sub(prefix.len());
    let tail: String = slug.chars().take(room).collect();
    format!("{prefix}{}", tail.trim_end_matches('-'))
}

impl Previews {
    pub fn new(parts: Parts) -> Arc<Self> {
        Arc::new(Self {
            db: parts.db,
            deployer: parts.deployer,
            github: parts.github,
            sealer: parts.sealer,
            config: parts.config,
            base: parts.base,
        })
    }

    /// A `pull_request` delivery for `project`.
    pub async fn on_pull_request(
        &self,
        project: &Project,
        action: &str,
        pr: PullRequest,
    ) -> Result<Outcome, DeployError> {
        let ignored = |detail: String| {
            Ok(Outcome {
                deployed: None,
                detail,
            })
        };
        if !project.previews_enabled {
            return ignored("previews are off for this project".into());
        }
        let number = pr.number;
        match action {
            "opened" | "reopened" | "synchronize" => {
                let row = db::previews::upsert(&self.db, project.id, pr).await?;
                if row.fork && row.approved_sha.as_deref() != Some(row.head_sha.as_str()) {
                    let note = format!(
                        "the pull request comes from a fork: commit {} waits for a maintainer's approval",
                        short(&row.head_sha)
                    );
                    let change = Change {
                        state: Some(PreviewState::AwaitingApproval),
                        note: Some(Some(note.clone())),
                        ..Change::default()
                    };
                    let row = db::previews::change(&self.db, row, change).await?;
                    self.tell(project, &row, None).await;
                    return ignored(format!("#{number}: {note}"));
                }
                let deployment = self.deploy(project, row).await?;
                Ok(Outcome {
                    deployed: Some(deployment.id),
                    detail: format!("#{number}: preview deployment {} queued", deployment.id),
                })
            }
            "closed" => match db::previews::find(&self.db, project.id, number).await? {
                Some(row) => {
                    self.close(project, row, PR_CLOSED).await?;
                    ignored(format!("#{number}: preview removed"))
                }
                None => ignored(format!("#{number} had no preview")),
            },
            other => ignored(format!("pull_request '{other}' changes no preview")),
        }
    }

    /// Approves the head commit of pull request `number` and deploys it.
    pub async fn approve(&self, project: &Project, number: i32) -> Result<Deployment, DeployError> {
        let row = db::previews::find(&self.db, project.id, number)
            .await?
            .ok_or(DeployError::NotFound("preview"))?;
        if row.state == PreviewState::Closed && row.note.as_deref() == Some(PR_CLOSED) {
            return Err(DeployError::Conflict(format!(
                "pull request #{number} is closed"
            )));
        }
        if !project.previews_enabled {
            return Err(DeployError::Conflict(
                "previews are off for this project".into(),
            ));
        }
        let sha = row.head_sha.clone();
        let change = Change {
            approved_sha: Some(Some(sha)),
            ..Change::default()
        };
        let row = db::previews::change(&self.db, row, change).await?;
        self.deploy(project, row).await
    }

    /// Deploys the head commit of `row` (a fork's only when approved).
    pub async fn redeploy(
        &self,
        project: &Project,
        number: i32,
    ) -> Result<Deployment, DeployError> {
        let row = db::previews::find(&self.db, project.id, number)
            .await?
            .ok_or(DeployError::NotFound("preview"))?;
        if row.fork && row.approved_sha.as_deref() != Some(row.head_sha.as_str()) {
            return Err(DeployError::Conflict(
                "a fork's commit builds only once approved; approve it first".into(),
            ));
        }
        if !project.previews_enabled {
            return Err(DeployError::Conflict(
                "previews are off for this project".into(),
            ));
        }
        self.deploy(project, row).await
    }

    /// Makes room (the project's `max`), creates the child project if needed and queues the
    /// head commit's deploy.
    async fn deploy(&self, project: &Project, row: Preview) -> Result<Deployment, DeployError> {
        let others: Vec<Preview> = db::previews::of_project(&self.db, project.id)
            .await?
            .into_iter()
            .filter(|p| p.id != row.id && p.preview_project_id.is_some())
            .collect();
        let max = project.previews_max.max(1) as usize;
        if others.len() >= max {
            let mut oldest = others;
            oldest.sort_by_key(|p| p.opened_at);
            let excess = oldest.len() + 1 - max;
            for old in oldest.into_iter().take(excess) {
                let why = format!("evicted: the project keeps at most {max} previews");
                self.close(project, old, &why).await?;
            }
        }
        let child = match row.preview_project_id {
            Some(id) => db::projects::find(&self.db, id).await?,
            None => None,
        };
        let child = match child {
            Some(child) => child,
            None => {
                let production = self.deployer.limits_of(project);
                let memory = production.memory_mb.min(self.config.previews.memory_mb);
                let cpu = production.cpu_millis.min(self.config.previews.cpu_millis);
                let spec = db::previews::Child {
                    slug: child_slug(row.pr_number, &project.slug),
                    number: row.pr_number,
                    memory_limit_mb: Some(memory),
                    cpu_limit_millis: Some(cpu as i32),
                };
                db::previews::insert_child(&self.db, project, spec).await?
            }
        };
        let deployment = self
            .deployer
            .request_push(
                &child,
                Pushed {
                    commit_sha: row.head_sha.to_ascii_lowercase(),
                    message: Some(row.title.chars().take(500).collect()),
                    pusher: row.author.clone(),
                },
            )
            .await?;
        let change = Change {
            state: Some(PreviewState::Deploying),
            note: Some(None),
            preview_project_id: Some(Some(child.id)),
            deployment_id: Some(Some(deployment.id)),
            closed_at: Some(None),
            ..Change::default()
        };
        let row = db::previews::change(&self.db, row, change).await?;
        self.tell(project, &row, Some(&child)).await;
        Ok(deployment)
    }

    /// Removes a preview's child project (containers, image, routes) and marks it closed.
    pub async fn close(
        &self,
        project: &Project,
        row: Preview,
        why: &str,
    ) -> Result<(), DeployError> {
        if let Some(child) = row.preview_project_id
            && let Some(child) = db::projects::find(&self.db, child).await?
        {
            self.deployer.delete_project(&child).await?;
        }
        let change = Change {
            state: Some(PreviewState::Closed),
            note: Some(Some(why.to_string())),
            preview_project_id: Some(None),
            closed_at: Some(Some(Utc::now())),
            ..Change::default()
        };
        let row = db::previews::change(&self.db, row, change).await?;
        self.tell(project, &row, None).await;
        Ok(())
    }

    /// Removes every preview of a project (it is being deleted, or turned previews off).
    pub async fn close_all(&self, project: &Project, why: &str) -> Result<(), DeployError> {
        for row in db::previews::of_project(&self.db, project.id).await? {
            if row.state != PreviewState::Closed || row.preview_project_id.is_some() {
                self.close(project, row, why).await?;
            }
        }
        for child in db::previews::children(&self.db, project.id).await? {
            self.deployer.delete_project(&child).await?;
        }
        Ok(())
    }

    /// Settles a deploying preview whose deployment ended.
    async fn settle(&self, project: &Project, row: Preview) -> Result<(), DeployError> {
        let Some(id) = row.deployment_id else {
            return Ok(());
        };
        let Some(deployment) = db::deployments::find(&self.db, id).await? else {
            return Ok(());
        };
        let state = match deployment.status {
            DeploymentStatus::Live => PreviewState::Live,
            DeploymentStatus::Failed | DeploymentStatus::Cancelled => PreviewState::Failed,
            _ => return Ok(()),
        };
        if row.state == state {
            return Ok(());
        }
        let child = match row.preview_project_id {
            Some(child) => db::projects::find(&self.db, child).await?,
            None => None,
        };
        let change = Change {
            state: Some(state),
            ..Change::default()
        };
        let row = db::previews::change(&self.db, row, change).await?;
        self.tell(project, &row, child.as_ref()).await;
        Ok(())
    }

    /// One pass of the reconciler; what it closed, for the log.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let mut closed = 0;
        for row in db::previews::open(&self.db).await? {
            let Some(project) = db::projects::find(&self.db, row.project_id).await? else {
                continue;
            };
            let ttl = chrono::Duration::days(project.previews_ttl_days.max(1).into());
            if !project.previews_enabled {
                self.close(&project, row, "previews were turned off")
                    .await?;
                closed += 1;
            } else if row.updated_at + ttl < now {
                let why = format!("expired: no change for {} days", project.previews_ttl_days);
                self.close(&project, row, &why).await?;
                closed += 1;
            } else if row.state == PreviewState::Deploying {
                self.settle(&project, row).await?;
            }
        }
        // Child projects no open preview owns (a crash between the two steps of a close).
        for child in db::previews::all_children(&self.db).await? {
            let owned = db::previews::of_child(&self.db, child.id)
                .await?
                .is_some_and(|p| p.state != PreviewState::Closed);
            if !owned {
                self.deployer.delete_project(&child).await?;
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Watches a preview deployment until it ends, then settles its preview (the reconciler
    /// does the same for deployments nobody watched).
    pub fn watch(self: &Arc<Self>, project: Project, deployment: Uuid) {
        let previews = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now()
                + Duration::from_secs(previews.config.deploy.build_timeout_secs + 900);
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(Some(d)) = db::deployments::find(&previews.db, deployment).await else {
                    return;
                };
                if d.status.is_in_progress() || d.status == DeploymentStatus::Queued {
                    continue;
                }
                let Ok(Some(row)) =
                    db::previews::find_by_deployment(&previews.db, deployment).await
                else {
                    return;
                };
                if let Err(e) = previews.settle(&project, row).await {
                    tracing::warn!(error = %e, "cannot settle a preview");
                }
                return;
            }
        });
    }

    /// The reconciler loop: at start, then every `previews.reconcile_secs`, on the leader.
    pub async fn run(self: Arc<Self>, leadership: Leadership, stop: CancellationToken) {
        let every = Duration::from_secs(self.config.previews.reconcile_secs);
        loop {
            if leadership.is_leader() {
                match self.reconcile().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "reconciled previews"),
                    Err(e) => tracing::warn!(error = %e, "cannot reconcile previews"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}
