//! A cgroup per build, so that a `RUN` step's processes are counted together: Docker's build
//! API can limit memory and CPU per step but not the number of processes, and a fork bomb in a
//! Dockerfile would otherwise take the host's process table. The build's steps run under
//! `/shard-builds/<deployment>` (the `cgroupparent` build option), whose `pids.max` this module
//! writes before the build and which it removes after.
//!
//! This works when the engine manages cgroups itself (`cgroupfs` driver, cgroup v1 or v2) and
//! shard may write the cgroup filesystem (it runs as root on the host). Elsewhere (the
//! `systemd` driver, shard in a container) the limit is not applied, and the build's log says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cgroup filesystem, as this host mounts it.
const ROOT: &str = "/sys/fs/cgroup";
/// Where build cgroups live, under each hierarchy.
const PARENT: &str = "shard-builds";

/// How the engine lays out cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1, `cgroupfs` driver: one hierarchy per controller.
    V1,
    /// cgroup v2 (unified), `cgroupfs` driver.
    V2,
    /// The engine goes through systemd: shard cannot prepare a parent for it.
    Systemd,
    Unknown,
}

impl Layout {
    pub fn of(driver: Option<&str>, version: Option<&str>) -> Self {
        match (driver, version) {
            (Some("systemd"), _) => Layout::Systemd,
            (Some("cgroupfs"), Some("2")) => Layout::V2,
            (Some("cgroupfs"), _) => Layout::V1,
            _ => Layout::Unknown,
        }
    }
}

/// One build's cgroup; removed on drop (retried for a while when the engine still holds it).
#[derive(Debug)]
pub struct BuildCgroup {
    layout: Layout,
    name: String,
    parent: String,
}

impl BuildCgroup {
    /// Makes `/shard-builds/<name>` with at most `pids` processes, or says why it cannot.
    pub fn prepare(layout: Layout, name: &str, pids: u64) -> Result<Self, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("'{name}' is not a cgroup name"));
        }
        let dir = match layout {
            Layout::V1 => Path::new(ROOT).join("pids").join(PARENT).join(name),
            Layout::V2 => {
                let parent = Path::new(ROOT).join(PARENT);
                enable_controllers(Path::new(ROOT));
                std::fs::create_dir_all(&parent).map_err(|e| cannot(&parent, e))?;
                enable_controllers(&parent);
                parent.join(name)
            }
            Layout::Systemd => {
                return Err(
                    "the Docker engine manages cgroups through systemd; the build's process \
                     limit needs its cgroupfs driver"
                        .into(),
                );
            }
            Layout::Unknown => return Err("the engine's cgroup layout is unknown".into()),
        };
        std::fs::create_dir_all(&dir).map_err(|e| cannot(&dir, e))?;
        let cgroup = Self {
            layout,
            name: name.to_string(),
            parent: format!("/{PARENT}/{name}"),
        };
        if layout == Layout::V2 {
            enable_controllers(&dir);
        }
        let limit = dir.join("pids.max");
        std::fs::write(&limit, pids.to_string()).map_err(|e| cannot(&limit, e))?;
        Ok(cgroup)
    }

    /// The `cgroupparent` the build is given.
    pub fn parent(&self) -> &str {
        &self.parent
    }

    /// Every directory this cgroup has (the engine makes it in each v1 hierarchy).
    fn dirs(&self) -> Vec<PathBuf> {
        match self.layout {
            Layout::V1 => std::fs::read_dir(ROOT)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.path().join(PARENT).join(&self.name))
                        .filter(|p| p.exists())
                        .collect()
                })
                .unwrap_or_default(),
            _ => vec![Path::new(ROOT).join(PARENT).join(&self.name)],
        }
    }
}

impl Drop for BuildCgroup {
    fn drop(&mut self) {
        let dirs = self.dirs();
        if remove_all(&dirs) {
            return;
        }
        // The engine may still be removing the last step's container: try again for a while.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                for _ in 0..60 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if remove_all(&dirs) {
                        return;
                    }
                }
                tracing::warn!(?dirs, "a build's cgroup could not be removed");
            });
        }
    }
}

/// Removes the build cgroups of builds not in `running` (left by a shard that was killed
/// mid-build); one the engine still uses stays. Answers how many went.
pub fn sweep(running: &std::collections::HashSet<String>) -> usize {
    let Ok(hierarchies) = std::fs::read_dir(ROOT) else {
        return 0;
    };
    let mut parents: Vec<PathBuf> = hierarchies
        .flatten()
        .map(|e| e.path().join(PARENT))
        .filter(|p| p.is_dir())
        .collect();
    let unified = Path::new(ROOT).join(PARENT);
    if unified.is_dir() && !parents.contains(&unified) {
        parents.push(unified);
    }
    let mut removed = 0;
    for parent in parents {
        let Ok(builds) = std::fs::read_dir(&parent) else {
            continue;
        };
        for build in builds.flatten() {
            let name = build.file_name().to_string_lossy().into_owned();
            // A fresh one may be another instance's build whose first step has not started
            // (nothing in it yet to keep it from going): only old ones are swept.
            let old = build
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(120)));
            let is_build = build.file_type().is_ok_and(|t| t.is_dir())
                && uuid::Uuid::parse_str(&name).is_ok()
                && old;
            if is_build && !running.contains(&name) && remove_all(&[build.path()]) {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes each directory (children first); true when none is left.
fn remove_all(dirs: &[PathBuf]) -> bool {
    dirs.iter().all(|dir| {
        if !dir.exists() {
            return true;
        }
        // Leftover child cgroups of removed step containers go first (empty ones only).
        if let Ok(children) = std::fs::read_dir(dir) {
            for child in children.flatten() {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        std::fs::remove_dir(dir).is_ok() || !dir.exists()
    })
}

/// Lets `dir`'s children use the pids, memory and cpu controllers (cgroup v2), each on its own
/// (one the host lacks must not keep the others off).
fn enable_controllers(dir: &Path) {
    for controller in ["+pids", "+memory", "+cpu"] {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), controller);
    }
}

fn cannot(path: &Path, e: std::io::Error) -> String {
    format!(
        "cannot set up the build's cgroup ({}: {e}); shard needs to write the cgroup filesystem",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_the_engines_driver_and_version() {
        assert_eq!(Layout::of(Some("cgroupfs"), Some("1")), Layout::V1);
        assert_eq!(Layout::of(Some("cgroupfs"), Some("2")), Layout::V2);
        assert_eq!(Layout::of(Some("systemd"), Some("2")), Layout::Systemd);
        assert_eq!(Layout::of(None, None), Layout::Unknown);
        assert!(BuildCgroup::prepare(Layout::Systemd, "x", 10).is_err());
        assert!(BuildCgroup::prepare(Layout::V1, "../escape", 10).is_err());
    }
}
