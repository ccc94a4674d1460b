//! Upgrades in place (`kill -USR2 <pid>`, or `systemctl reload shard`): the running process
//! starts the binary now at its path, hands it the listening sockets, waits until it serves,
//! and only then drains and exits. No connection is refused meanwhile: the sockets never close
//! (both processes hold them for a moment, and the kernel queues new connections on them
//! throughout).
//!
//! - **Handing over.** The sockets are placed at fds 3, 4 of the new process (command-fds maps
//!   them between fork and exec, so no other child of shard inherits them) and announced with
//!   systemd's protocol (`LISTEN_FDS`, `LISTEN_FDNAMES=listen:https`), plus `SHARD_UPGRADE=1`.
//!   The same code takes sockets from a systemd `.socket` unit. The new process writes its pid
//!   into `shard.lock` once its server accepts; if it exits first, or has not done so within
//!   [`READY_WITHIN`], the old process kills it, keeps serving, and says why.
//! - **What the new process does differently.** It takes the sockets instead of binding; takes
//!   the data-dir lock once the old process lets go of it (in the background: meanwhile the old
//!   one holds it, so a third `shard serve` is still refused); never puts a migration snapshot
//!   back over a database the old process has open; does not expire running job leases (the
//!   old process still renews the ones it runs); and follows route changes from the database
//!   (the old process may still switch a deployment it finishes). Under systemd it tells the
//!   manager its pid (`MAINPID`, with `NotifyAccess=all`).
//! - **Draining the old process.** It stops accepting, answers in-flight requests with
//!   `Connection: close` so keep-alive clients move to the new process, closes dashboard
//!   WebSockets with 1012 (service restart; the client reconnects and resumes with `since`;
//!   a reconnect the old process still accepted, in the moment its accept loop takes to
//!   pause, gets 1012 again),
//!   finishes the jobs it is running (their leases stay live, so nobody else takes them) while
//!   its paused server still carries in-flight proxied requests, WebSockets and SSE (and its
//!   worker runtimes, with the database connections they opened, stay alive for the jobs), its
//!   routes following the database every 5 s (a keep-alive client may come back), then
//!   lets those finish for up to `http.shutdown_timeout_secs`.
//!   A viewer who reconnects to the new process meanwhile keeps seeing those deploys live: on
//!   Postgres through the hub relay, on SQLite through `hub::relay::tail`, which reads what the
//!   old process appends to the topics watched here until it has exited.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Set for a process an upgrade started (its sockets come from the old process).
pub const UPGRADE_ENV: &str = "SHARD_UPGRADE";
/// How long the new process gets to start serving (it may migrate the database first).
pub const READY_WITHIN: Duration = Duration::from_secs(300);

/// Sockets this process was started with: by an upgrade, or by a systemd socket unit.
#[derive(Default)]
pub struct Inherited {
    pub listen: Option<TcpListener>,
    pub https: Option<TcpListener>,
    /// Started by an upgrade of a running shard (not by the service manager).
    pub upgrade: bool,
}

impl Inherited {
    /// Reads `LISTEN_FDS` (and `LISTEN_FDNAMES`: `listen`, `https`; unnamed, the first is the
    /// listener and the second the HTTPS one). Call it before any thread starts: it clears
    /// those variables from the environment.
    pub fn from_env() -> anyhow::Result<Inherited> {
        let upgrade = std::env::var_os(UPGRADE_ENV).is_some();
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|n| n.split(':').map(str::to_string).collect())
            .unwrap_or_default();
        let mut fds = listenfd::ListenFd::from_env();
        let mut inherited = Inherited {
            upgrade,
            ..Default::default()
        };
        for i in 0..fds.len() {
            let name = names.get(i).map(String::as_str).unwrap_or(match i {
                0 => "listen",
                _ => "https",
            });
            let listener = fds
                .take_tcp_listener(i)
                .with_context(|| format!("inherited socket {i} ({name})"))?;
            match name {
                "listen" => inherited.listen = listener,
                "https" => inherited.https = listener,
                other => tracing::warn!(name = other, "an inherited socket shard has no use for"),
            }
        }
        if upgrade && inherited.listen.is_none() {
            anyhow::bail!("{UPGRADE_ENV} is set but no listening socket was handed over");
        }
        Ok(inherited)
    }
}

/// What the running process hands to its successor: its own copies of the sockets.
pub struct Handover {
    pub listen: TcpListener,
    pub https: Option<TcpListener>,
    /// `<data_dir>/shard.lock`, where the successor writes its pid once it serves.
    pub lock_path: PathBuf,
}

impl Handover {
    /// Starts the binary at `exe` with this process's arguments and environment and the
    /// sockets, and waits until it serves. An error (it exited, or took too long) leaves this
    /// process serving; the successor is then killed.
    pub async fn start_successor(&self, exe: &Path) -> anyhow::Result<u32> {
        use command_fds::{CommandFdExt, FdMapping};
        let mut names = vec!["listen"];
        let mut mappings = vec![FdMapping {
            parent_fd: OwnedFd::from(self.listen.try_clone()?),
            child_fd: 3,
        }];
        if let Some(https) = &self.https {
            names.push("https");
            mappings.push(FdMapping {
                parent_fd: OwnedFd::from(https.try_clone()?),
                child_fd: 4,
            });
        }
        let mut command = std::process::Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(UPGRADE_ENV, "1")
            .env("LISTEN_FDS", names.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env_remove("LISTEN_PID")
            // The manager's watchdog follows the main pid, which the successor becomes.
            .env_remove("WATCHDOG_PID");
        command
            .fd_mappings(mappings)
            .context("cannot hand the sockets over")?;
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id();
        let started = Instant::now();
        let failure = loop {
            if std::fs::read_to_string(&self.lock_path)
                .is_ok_and(|text| text.trim() == pid.to_string())
            {
                // It outlives this process (and is adopted when this one exits).
                drop(child);
                return Ok(pid);
            }
            if let Ok(Some(status)) = child.try_wait() {
                break format!("the new process exited ({status}) before it served");
            }
            if started.elapsed() > READY_WITHIN {
                break format!(
                    "the new process did not serve within {} s",
                    READY_WITHIN.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("{failure}; this process goes on serving")
    }
}
