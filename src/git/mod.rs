//! Git access: the only module that imports gix. A shallow (depth 1) fetch of a branch tip or
//! of one commit over http(s) into a fresh build directory, then a checkout of its tree. Blocking (gix has no async
//! HTTP transport): callers run it on a blocking thread.

use std::path::Path;
use std::sync::Arc;
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
    /// The commit's files would take more than the limit on disk (nothing was written).
    #[error("the checkout would take more than {limit_mb} MiB on disk (deploy.max_checkout_mb)")]
    TooLarge { limit_mb: u64 },
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
///
/// Redirects are never followed (a server must not send the fetch, or its credential, to
/// another host). `resolver`, when given, is the HTTP client's resolver: the outbound guard
/// for a URL a member set.
pub fn fetch(
    url: &str,
    revision: Revision<'_>,
    dest: &Path,
    token: Option<&str>,
    resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    max_checkout_bytes: u64,
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
    // No redirects (a server must not send the fetch or its credential elsewhere); one thread
    // to index the pack and one to check out, with a small delta-base cache, so a fetch's
    // memory stays near one object's size whatever the repository (two run at once).
    let mut overrides = vec![
        "http.followRedirects=false".to_string(),
        "pack.threads=1".to_string(),
        "checkout.workers=1".to_string(),
        "core.deltaBaseCacheLimit=8m".to_string(),
    ];
    if let Some(token) = token {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        overrides.push(format!("http.extraHeader=Authorization: Basic {basic}"));
    }
    prepare = prepare.with_in_memory_config_overrides(overrides);
    if let Some(resolver) = resolver {
        let remote_url = url.to_string();
        prepare = prepare.configure_connection(move |connection| {
            guard_connection(connection, &remote_url, resolver.clone())
        });
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
    // Counted before anything is written: a tree that names one blob under a million paths
    // is small to fetch and huge on disk.
    let used = {
        let tree = checkout
            .repo()
            .head_commit()
            .map_err(|e| failed("cannot read the fetched commit", &e))?
            .tree()
            .map_err(|e| failed("cannot read the fetched tree", &e))?;
        disk_use(&tree, max_checkout_bytes).map_err(|e| failed("cannot size the checkout", &e))?
    };
    if used > max_checkout_bytes {
        return Err(GitError::TooLarge {
            limit_mb: max_checkout_bytes / (1024 * 1024),
        });
    }
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

/// Gives the connection's HTTP client `resolver`, on top of the options git's configuration
/// (and the overrides above) made for `url`.
fn guard_connection(
    connection: &mut gix::remote::Connection<
        '_,
        '_,
        '_,
        Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>,
    >,
    url: &str,
    resolver: Arc<dyn reqwest::dns::Resolve>,
) -> gix::Result {
    use gix::protocol::transport::client::blocking_io::http;
    let repo = connection.remote().repo();
    let options = repo.transport_options(url, None)?;
    let mut options = match options.and_then(|o| o.downcast::<http::Options>().ok()) {
        Some(options) => *options,
        None => http::Options::default(),
    };
    let configure: Box<http::reqwest::ConfigureClientFn> =
        Box::new(move |builder| Ok(builder.dns_resolver(Arc::new(Shared(resolver.clone())))));
    options.backend = Some(Arc::new(std::sync::Mutex::new(http::reqwest::Options {
        configure_client: Some(configure),
        configure_request: None,
    })));
    connection.set_transport_options(Box::new(options));
    Ok(())
}

/// What a file takes on disk at least: one filesystem block (an empty file still costs an
/// inode and a directory entry; round up to a block rather than undercount).
const BLOCK: u64 = 4096;

/// The disk space `tree`'s files would take once checked out, each file rounded up to whole
/// blocks and each directory one block; counting stops once past `limit`.
fn disk_use(tree: &gix::Tree<'_>, limit: u64) -> gix::Result<u64> {
    let mut sizer = Sizer {
        repo: tree.repo,
        total: 0,
        limit,
        unreadable: false,
    };
    // Past the limit the sizer stops the walk, which gix reports as cancelled.
    if let Err(e) = tree.traverse().breadthfirst(&mut sizer)
        && !sizer.over()
    {
        return Err(e);
    }
    Ok(if sizer.unreadable {
        u64::MAX
    } else {
        sizer.total
    })
}

/// Sums entry sizes from object headers (nothing is decompressed).
struct Sizer<'r> {
    repo: &'r gix::Repository,
    total: u64,
    limit: u64,
    /// A blob's header could not be read: count the tree as too large.
    unreadable: bool,
}

impl Sizer<'_> {
    fn over(&self) -> bool {
        self.unreadable || self.total > self.limit
    }
}

impl gix::traverse::tree::Visit for Sizer<'_> {
    fn pop_back_tracked_path_and_set_current(&mut self) {}
    fn pop_front_tracked_path_and_set_current(&mut self) {}
    fn push_back_tracked_path_component(&mut self, _: &gix::bstr::BStr) {}
    fn push_path_component(&mut self, _: &gix::bstr::BStr) {}
    fn pop_path_component(&mut self) {}

    fn visit_tree(
        &mut self,
        _: &gix::objs::tree::EntryRef<'_>,
    ) -> gix::traverse::tree::visit::Action {
        self.total = self.total.saturating_add(BLOCK);
        if self.over() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(true)
        }
    }

    fn visit_nontree(
        &mut self,
        entry: &gix::objs::tree::EntryRef<'_>,
    ) -> gix::traverse::tree::visit::Action {
        if self.over() || entry.mode.is_commit() {
            return std::ops::ControlFlow::Continue(true);
        }
        match self.repo.find_header(entry.oid) {
            Ok(header) => {
                let blocks = header.size().div_ceil(BLOCK).max(1);
                self.total = self.total.saturating_add(blocks.saturating_mul(BLOCK));
            }
            Err(_) => self.unreadable = true,
        }
        std::ops::ControlFlow::Continue(true)
    }
}

/// A shared resolver as the sized one reqwest's builder takes.
struct Shared(Arc<dyn reqwest::dns::Resolve>);

impl reqwest::dns::Resolve for Shared {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

/// Removes any occurrence of the token from an error message.
fn redact(text: &str, token: Option<&str>) -> String {
    match token {
        Some(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_fetch_never_connects_to_what_its_resolver_refuses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let dest = tempfile::TempDir::new().unwrap();
        let result = fetch(
            &format!("http://localhost:{port}/repo.git"),
            Revision::Branch("main"),
            &dest.path().join("checkout"),
            Some("secret-token"),
            Some(Arc::new(crate::egress::Guard)),
            u64::MAX,
            &AtomicBool::new(false),
        );
        let err = result.expect_err("the guard refuses loopback");
        assert!(!err.to_string().contains("secret-token"), "{err}");
        assert!(
            listener.accept().is_err(),
            "the fetch connected to loopback through the guard"
        );
    }
}
