//! File mounts: files uploaded to a project (a config file, a certificate, a `robots.txt`),
//! mounted read-only at `/{path}` in its app. Every upload or deletion makes the project's next
//! *files version* (`db::files`); content is sealed at rest. A change reaches the app only
//! through a deployment: each start records the version it mounts, writes that version's files
//! under `<data_dir>/files/<project>/<version>/` (once) and bind-mounts each file read-only, so
//! a bad config file fails the new deployment's health gate while the old one keeps serving.
//! Directories of versions no running deployment mounts are removed at the next start.
//! Under Swarm the same files are given to the service as Docker configs (`docker::configs`),
//! so every replica on every node has them.
//!
//! Paths follow the rules of `static_dir` (absolute once a `/` is put in front, no `..`), plain
//! characters only, never `/proc`, `/sys` or `/dev`; sizes and counts are `[quotas]`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::pipeline::{Pipeline, Stop, failed};
use super::{DeployError, Deployer};
use crate::db;
use crate::db::files::{Change, FileMeta};
use crate::db::projects::Project;
use crate::docker::FileMount;

/// Where no file may be mounted.
const RESERVED: &[&str] = &["/proc", "/sys", "/dev"];

/// The absolute path in the container for `path` as the API names it (`etc/app.toml` or
/// `/etc/app.toml`), or why it cannot be one.
pub fn mount_path(path: &str) -> Result<String, DeployError> {
    let invalid = |message: String| DeployError::Invalid {
        field: "path",
        message,
    };
    let absolute = format!("/{}", path.trim_start_matches('/'));
    crate::validate::static_dir(&absolute).map_err(invalid)?;
    if absolute.ends_with('/')
        || absolute
            .split('/')
            .skip(1)
            .any(|p| p.is_empty() || p == ".")
    {
        return Err(invalid(format!(
            "'{path}' is not a file path: no empty or '.' parts, no trailing '/'"
        )));
    }
    if !crate::build::plain_path(&absolute) {
        return Err(invalid(
            "may only contain letters, digits, '/', '.', '_' and '-'".into(),
        ));
    }
    if RESERVED
        .iter()
        .any(|r| absolute == *r || absolute.starts_with(&format!("{r}/")))
    {
        return Err(invalid(format!(
            "'{absolute}' is under a system directory the kernel provides"
        )));
    }
    Ok(absolute)
}

/// The file's key in the database: its absolute path without the leading `/`.
fn key(absolute: &str) -> String {
    absolute.trim_start_matches('/').to_string()
}

/// A limit in bytes from a KiB quota (0: none).
fn kib(quota: u32) -> Option<u64> {
    (quota > 0).then(|| u64::from(quota) * 1024)
}

impl Deployer {
    /// Stores `content` as the file at `path` of `project` (a new version); the next deployment
    /// mounts it.
    pub async fn put_file(
        &self,
        project: &Project,
        path: &str,
        content: &[u8],
        by: Option<Uuid>,
    ) -> Result<(i32, String), DeployError> {
        let absolute = mount_path(path)?;
        let key = key(&absolute);
        let quotas = &self.config.quotas;
        let history = db::files::history(&self.db, project.id).await?;
        let current: Vec<&FileMeta> = history.iter().filter(|f| f.is_current()).collect();
        let replacing = current.iter().any(|f| f.path == key);
        let count = quotas.file_mounts_per_project as usize;
        if count > 0 && !replacing && current.len() >= count {
            return Err(DeployError::Conflict(format!(
                "the project has {count} files already (quotas.file_mounts_per_project)"
            )));
        }
        if let Some(limit) = kib(quotas.file_mounts_kib_per_project) {
            let others: u64 = current
                .iter()
                .filter(|f| f.path != key)
                .map(|f| f.size_bytes.max(0) as u64)
                .sum();
            if others + content.len() as u64 > limit {
                return Err(DeployError::TooLarge(format!(
                    "the project's files would hold {} KiB, more than {} KiB \
                     (quotas.file_mounts_kib_per_project)",
                    (others + content.len() as u64).div_ceil(1024),
                    limit / 1024
                )));
            }
        }
        for volume in db::volumes::for_project(&self.db, project.id).await? {
            if volume.mount_path.trim_end_matches('/') == absolute {
                return Err(DeployError::Conflict(format!(
                    "volume '{}' is mounted at {absolute}",
                    volume.name
                )));
            }
        }
        let id = Uuid::now_v7();
        let sha = hex::encode(Sha256::digest(content));
        let sealed = self.sealer.seal(content, id.as_bytes());
        let change = Change {
            id,
            path: key,
            content: Some((sealed, content.len() as i64, sha.clone())),
            by,
        };
        let version = db::files::record(&self.db, project.id, change).await?;
        Ok((version, sha))
    }

    /// Deletes the file at `path` (a new version without it); false when there is none.
    pub async fn delete_file(
        &self,
        project: &Project,
        path: &str,
        by: Option<Uuid>,
    ) -> Result<Option<i32>, DeployError> {
        let key = key(&mount_path(path)?);
        if db::files::find(&self.db, project.id, &key).await?.is_none() {
            return Ok(None);
        }
        let change = Change {
            id: Uuid::now_v7(),
            path: key,
            content: None,
            by,
        };
        Ok(Some(db::files::record(&self.db, project.id, change).await?))
    }

    /// The current content of the file at `path`, opened.
    pub async fn read_file(
        &self,
        project: &Project,
        path: &str,
    ) -> Result<Option<Vec<u8>>, DeployError> {
        let key = key(&mount_path(path)?);
        let Some(row) = db::files::find(&self.db, project.id, &key).await? else {
            return Ok(None);
        };
        Ok(Some(self.open_file(&row)?))
    }

    fn open_file(&self, row: &db::files::FileRow) -> Result<Vec<u8>, DeployError> {
        let sealed = row.content.as_deref().unwrap_or_default();
        self.sealer
            .open(sealed, row.id.as_bytes())
            .map_err(|e| DeployError::Internal(anyhow::anyhow!("file /{}: {e}", row.path)))
    }
}

/// Writes `files` (opened) into `dir` unless it is there already: into a fresh directory
/// first, renamed into place, so a crash never leaves a half-written version that looks whole.
fn materialize(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().expect("a version directory has a parent");
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".staging-{}", Uuid::now_v7().simple()));
    let result = (|| {
        for (path, content) in files {
            let target = staging.join(path);
            if let Some(up) = target.parent() {
                std::fs::create_dir_all(up)?;
            }
            std::fs::write(&target, content)?;
            // Readable by the app's user, whoever that is; nobody may change it.
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444))?;
        }
        std::fs::create_dir_all(&staging)?;
        std::fs::rename(&staging, dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if dir.is_dir() {
            // Another start wrote the same version first.
            return Ok(());
        }
    }
    result
}

/// Removes the version directories under `project_dir` that are not in `keep` (and leftovers
/// of interrupted writes).
fn prune_versions(project_dir: &Path, keep: &[i32]) {
    let Ok(entries) = std::fs::read_dir(project_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let used = name.parse::<i32>().is_ok_and(|v| keep.contains(&v));
        if !used && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(dir = %entry.path().display(), error = %e, "cannot remove old file mounts");
        }
    }
}

impl Pipeline {
    /// The project's files at its current version, written to the data dir and recorded as
    /// this deployment's version; an empty list when it has none.
    pub(super) async fn file_mounts(&mut self) -> Result<Vec<FileMount>, Stop> {
        let (version, rows) = db::files::current(&self.d.db, self.project.id).await?;
        db::deployments::set_files_version(&self.d.db, self.deployment.id, version).await?;
        let project_dir: PathBuf = self
            .d
            .config
            .data_dir
            .join("files")
            .join(self.project.id.to_string());
        let mut keep: Vec<i32> = db::deployments::with_containers(&self.d.db, self.project.id)
            .await?
            .iter()
            .filter_map(|d| d.files_version)
            .collect();
        keep.push(version);
        prune_versions(&project_dir, &keep);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut files = Vec::with_capacity(rows.len());
        for row in &rows {
            let content = self
                .d
                .open_file(row)
                .map_err(|e| failed("start", e.to_string()))?;
            files.push((row.path.clone(), content));
        }
        let dir = project_dir.join(version.to_string());
        let written = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || materialize(&dir, &files)).await
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed("start", format!("cannot write the files: {e}"))),
            Err(e) => return Err(failed("start", format!("cannot write the files: {e}"))),
        }
        let paths: Vec<String> = rows.iter().map(|r| format!("/{}", r.path)).collect();
        self.log
            .system(format!(
                "==> Files (version {version}, read-only): {}",
                paths.join(", ")
            ))
            .await;
        Ok(rows
            .iter()
            .map(|r| FileMount {
                source: dir.join(&r.path),
                path: format!("/{}", r.path),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::mount_path;

    #[test]
    fn file_paths_are_plain_absolute_and_outside_the_kernels_directories() {
        assert_eq!(mount_path("etc/app.toml").unwrap(), "/etc/app.toml");
        assert_eq!(mount_path("/robots.txt").unwrap(), "/robots.txt");
        for bad in [
            "",
            "/",
            "../etc/passwd",
            "a/../../b",
            "a//b",
            "a/./b",
            "dir/",
            "proc/self/x",
            "sys/kernel",
            "dev/null",
            "a b",
            "a\nb",
            "é",
            &"a".repeat(300),
        ] {
            assert!(mount_path(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(mount_path("/procfile").is_ok());
    }
}
