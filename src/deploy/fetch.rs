//! The fetch step: the repository's branch (or a push's exact commit) into the build
//! directory with gix, within `deploy.fetch_timeout_secs` and cancellable, after checking
//! that a member's git URL does not point into the host's own networks; an imported project is
//! fetched with its GitHub account's token.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Deployer;
use super::env::{GIT_TOKEN_VAR, OpenVar};
use super::pipeline::{Pipeline, Stop, failed};
use super::workspace::remove_dir;
use crate::db::deployments::Deployment;
use crate::db::projects::Project;
use crate::egress as source;
use crate::{db, git};

impl Pipeline {
    /// Fetches into `build_dir`; a timeout or a cancel interrupts gix between packets.
    pub(super) async fn fetch(
        &mut self,
        build_dir: &Path,
        token: Option<String>,
    ) -> Result<git::Checkout, Stop> {
        // A push names its commit: build exactly that one, even if the branch moved on.
        let commit = pushed_commit(&self.deployment);
        self.d
            .fetch_source(&self.project, commit, build_dir, token, &self.cancel)
            .await
    }

    pub(super) async fn check_source(&self) -> Result<(), Stop> {
        self.d.check_source(&self.project).await
    }

    /// The credential the fetch sends (see `Deployer::git_token`); the log says when one is
    /// left out.
    pub(super) async fn git_token(&self, opened: &[OpenVar]) -> Result<Option<String>, Stop> {
        let (token, note) = self.d.git_token(&self.project, opened).await?;
        if let Some(note) = note {
            self.log.system(note).await;
        }
        Ok(token)
    }
}

impl Deployer {
    /// Fetches `project`'s branch tip (or `commit`) into `dir` within
    /// `deploy.fetch_timeout_secs`; a timeout or a cancel interrupts gix between packets.
    pub(super) async fn fetch_source(
        &self,
        p: &Project,
        commit: Option<String>,
        dir: &Path,
        token: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<git::Checkout, Stop> {
        remove_dir(dir).await;
        if let Some(parent) = dir.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(anyhow::Error::from)?;
        }
        let interrupt = Arc::new(AtomicBool::new(false));
        let timeout = Duration::from_secs(self.config.deploy.fetch_timeout_secs);
        let timed_out = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (cancel, interrupt, timed_out) =
                (cancel.clone(), interrupt.clone(), timed_out.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = tokio::time::sleep(timeout) => timed_out.store(true, Ordering::Relaxed),
                }
                interrupt.store(true, Ordering::Relaxed);
            })
        };
        let (url, branch, dir) = (p.git_url.clone(), p.branch.clone(), dir.to_path_buf());
        let max_bytes = self.config.deploy.max_checkout_mb * 1024 * 1024;
        // A member's URL is fetched through the outbound guard: checked at connect time.
        let resolver: Option<Arc<dyn reqwest::dns::Resolve>> = (!self.trusted_source(p))
            .then(|| Arc::new(crate::egress::Guard) as Arc<dyn reqwest::dns::Resolve>);
        let fetched = tokio::task::spawn_blocking(move || {
            let revision = match &commit {
                Some(sha) => git::Revision::Commit(sha),
                None => git::Revision::Branch(&branch),
            };
            git::fetch(
                &url,
                revision,
                &dir,
                token.as_deref(),
                resolver,
                max_bytes,
                &interrupt,
            )
        })
        .await;
        watcher.abort();
        match fetched.map_err(|e| anyhow::anyhow!("fetch task: {e}"))? {
            Ok(checkout) => Ok(checkout),
            Err(git::GitError::Cancelled) if timed_out.load(Ordering::Relaxed) => Err(failed(
                "fetch",
                format!(
                    "the fetch took longer than {} s (deploy.fetch_timeout_secs)",
                    timeout.as_secs()
                ),
            )),
            Err(git::GitError::Cancelled) => Err(Stop::Cancelled),
            Err(e) => Err(failed("fetch", e.to_string())),
        }
    }

    /// A member's repository must not sit on the host's own networks (checked again at
    /// fetch time: DNS may have changed since the project was saved). Who set the URL counts,
    /// not who created the project: a URL a team admin changed is checked.
    pub(super) async fn check_source(&self, p: &Project) -> Result<(), Stop> {
        if self.trusted_source(p) {
            return Ok(());
        }
        source::check_public(&p.git_url)
            .await
            .map_err(|why| failed("fetch", format!("the git URL {why}")))
    }

    /// Whether the git URL may reach private networks: an admin set it, or the install allows it.
    fn trusted_source(&self, p: &Project) -> bool {
        self.config.git.allow_private_networks || p.git_url_trusted
    }

    /// The credentials the fetch sends, each only to the origin it was given for: the
    /// project's `SHARD_GIT_TOKEN` to the git URL's origin when it was saved, else the
    /// imported project's GitHub account token to the clone URL's origin. A credential bound
    /// elsewhere is left out (the note says so, for the log); the fetch goes on without it.
    pub(super) async fn git_token(
        &self,
        p: &Project,
        opened: &[OpenVar],
    ) -> Result<(Option<String>, Option<String>), Stop> {
        let here = source::origin(&p.git_url);
        if let Some(var) = opened.iter().find(|v| v.key == GIT_TOKEN_VAR) {
            // Saved before tokens were bound: it was saved for this URL (a change of origin
            // deletes it).
            if var.bound_host.is_none() || var.bound_host == here {
                return Ok((Some(var.value.clone()), None));
            }
            return Ok((
                None,
                Some(format!(
                    "==> {GIT_TOKEN_VAR} was saved for another host; fetching without it \
                     (enter it again for this git URL)"
                )),
            ));
        }
        let github = source::origin(&self.config.github.web_url);
        let bound = p.github_origin.clone().or(github);
        if p.git_account_id.is_some() && bound != here {
            return Ok((
                None,
                Some(
                    "==> the GitHub account's token is for another host; fetching without it"
                        .into(),
                ),
            ));
        }
        Ok((self.account_token(p).await?, None))
    }

    /// The token of the GitHub account an imported project is fetched with, if any.
    async fn account_token(&self, p: &Project) -> Result<Option<String>, Stop> {
        let Some(id) = p.git_account_id else {
            return Ok(None);
        };
        let Some(account) = db::git_accounts::find(&self.db, id).await? else {
            return Err(failed(
                "fetch",
                "the GitHub account this project was imported with is disconnected; connect GitHub again",
            ));
        };
        Ok(Some(crate::github::open_token(&self.sealer, &account)?))
    }
}

/// The commit a push (or rebuild) deployment must build (`None`: the branch tip).
pub(super) fn pushed_commit(deployment: &Deployment) -> Option<String> {
    use crate::model::Trigger;
    matches!(deployment.trigger, Trigger::Push | Trigger::Rebuild)
        .then(|| deployment.commit_sha.clone())
        .flatten()
}
