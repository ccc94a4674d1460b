//! Git access: the only module that imports gix. A shallow (depth 1) fetch of a branch tip or
//! of one commit over http(s) into a fresh build directory, then a checkout of its tree. Blocking (gix has no async
//! HTTP transport): callers run it on a blocking thread.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use base64::Engine as _;

/// What was checked out.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// Full hex SHA of the commit at the branch tip.
    pub commit_sha: String,
    /// First line of its message.
    pub summary: String,
    /// True when the fetch was shallow (depth 1) as asked.
    pub shallow: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("branch '{0}' was not found in the repository")]
    BranchNotFound(String),
    #[error("fetch was cancelled")]
    Cancelled,
    #[error("{0}")]
    Failed(String),
}

/// What to check out: the tip of a branch, or one commit by its full SHA (a push webhook names
/// the commit it pushed; the branch may have moved on since).
#[derive(Debug, Clone, Copy)]
pub enum Revision<'a> {
    Branch(&'a str),
    Commit(&'a str),
}

/// Fetches `revision` of `url` at depth 1 into `dest` (which must not exist or be empty) and
/// checks it out. `token`, when given, is sent as HTTP basic auth (`x-access-token`), never
/// placed in the URL. `interrupt` stops the transfer when set.
///
/// A commit is asked for by its id (a protocol v2 `want` of an object no ref points at, which
/// GitHub and `git http-backend` serve for reachable commits); the checkout is then verified to
/// be exactly that commit.
pub fn fetch(
    url: &str,
    revision: Revision<'_>,
    dest: &Path,
    token: Option<&str>,
    interrupt: &AtomicBool,
) -> Result<Checkout, GitError> {
    let wanted = match revision {
        Revision::Branch(branch) => branch,
        Revision::Commit(sha) => sha,
    };
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            GitError::Cancelled
        } else {
            GitError::Failed(format!("{what}: {}", redact(&e.to_string(), token)))
        }
    };
    let prepare = gix::prepare_clone(url, dest)
        .map_err(|e| failed("cannot prepare the clone", &e))?
        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
            1.try_into().expect("1 is non-zero"),
        ));
    let mut prepare = match revision {
        Revision::Branch(branch) => prepare
            .with_ref_name(Some(branch))
            .map_err(|e| failed("invalid branch name", &e))?,
        Revision::Commit(sha) => prepare
            .with_revision(Some(sha))
            .map_err(|e| failed("invalid commit id", &e))?,
    };
    if let Some(token) = token {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        prepare = prepare.with_in_memory_config_overrides([format!(
            "http.extraHeader=Authorization: Basic {basic}"
        )]);
    }
    let (mut checkout, _outcome) = prepare
        .fetch_then_checkout(gix::progress::Discard, interrupt)
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("not found") && text.contains(wanted) {
                match revision {
                    Revision::Branch(branch) => GitError::BranchNotFound(branch.to_string()),
                    Revision::Commit(sha) => GitError::Failed(format!(
                        "commit {sha} is not in the repository (was it force-pushed away?)"
                    )),
                }
            } else {
                failed("fetch failed", &e)
            }
        })?;
    let (repo, _) = checkout
        .main_worktree(gix::progress::Discard, interrupt)
        .map_err(|e| failed("checkout failed", &e))?;
    let commit = repo
        .head_commit()
        .map_err(|e| failed("cannot read HEAD", &e))?;
    let summary = commit
        .message()
        .map(|m| m.summary().to_string())
        .unwrap_or_default();
    if let Revision::Commit(sha) = revision
        && !commit.id.to_string().eq_ignore_ascii_case(sha)
    {
        return Err(GitError::Failed(format!(
            "asked for commit {sha} but the checkout is {}",
            commit.id
        )));
    }
    Ok(Checkout {
        commit_sha: commit.id.to_string(),
        summary,
        shallow: repo.is_shallow().unwrap_or(false),
    })
}

/// Removes any occurrence of the token from an error message.
fn redact(text: &str, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_string(),
    }
}
