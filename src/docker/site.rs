//! Static sites: a directory copied out of a built image (through a created, never started
//! container) into a directory shard serves itself. Only regular files and directories are
//! written; links, devices and any path that would leave the destination are skipped; the
//! total size is capped.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Engine, EngineError};

/// Why a site could not be copied out.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Invalid(String),
    #[error("the output is larger than {0} MiB")]
    TooLarge(u64),
    #[error("cannot write the site: {0}")]
    Io(#[from] std::io::Error),
}

/// What was copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyStats {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
}

impl Engine {
    /// Copies directory `path` of `image` into `dest` (created; must not exist), at most
    /// `limit` bytes of file content.
    pub async fn copy_out(
        &self,
        image: &str,
        path: &str,
        labels: HashMap<String, String>,
        dest: &Path,
        limit: u64,
    ) -> Result<CopyStats, CopyError> {
        let docker = self.client().await?;
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_string()),
            // Never started; an image of files only has no command of its own.
            cmd: Some(vec!["/shard-static-copy".into()]),
            labels: Some(labels),
            network_disabled: Some(true),
            ..Default::default()
        };
        let created = docker
            .create_container(
                None::<bollard::query_parameters::CreateContainerOptions>,
                body,
            )
            .await
            .map_err(EngineError::from)?;
        let archive = dest.with_extension("tar");
        let result = async {
            let options = bollard::query_parameters::DownloadFromContainerOptions {
                path: path.to_string(),
            };
            let mut stream = docker.download_from_container(&created.id, Some(options));
            let mut file = tokio::fs::File::create(&archive).await?;
            // The tar holds headers and padding beside the content.
            let tar_limit = limit + limit / 8 + 1024 * 1024;
            let mut written = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(e) if super::is_not_found(&e) => {
                        return Err(CopyError::Invalid(format!("the image has no {path}")));
                    }
                    Err(e) => return Err(EngineError::from(e).into()),
                };
                written += chunk.len() as u64;
                if written > tar_limit {
                    return Err(CopyError::TooLarge(limit / (1024 * 1024)));
                }
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            let (archive, dest) = (archive.clone(), dest.to_path_buf());
            tokio::task::spawn_blocking(move || unpack(&archive, &dest, limit))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
        }
        .await;
        let _ = tokio::fs::remove_file(&archive).await;
        let _ = self.remove_container(&created.id).await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(dest).await;
        }
        result
    }
}

/// Unpacks the archive's single top directory into `dest`.
fn unpack(archive: &Path, dest: &Path, limit: u64) -> Result<CopyStats, CopyError> {
    std::fs::create_dir_all(dest)?;
    let mut tar = tar::Archive::new(std::fs::File::open(archive)?);
    let mut stats = CopyStats::default();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        // Docker names entries after the copied directory: drop that first component.
        let Some(relative) = inside(&path) else {
            stats.skipped += 1;
            continue;
        };
        let target = dest.join(&relative);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.header().size()?;
                stats.bytes += size;
                if stats.bytes > limit {
                    return Err(CopyError::TooLarge(limit / (1024 * 1024)));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut out = std::fs::File::create(&target)?;
                std::io::copy(&mut (&mut entry).take(size), &mut out)?;
                stats.files += 1;
            }
            _ => stats.skipped += 1,
        }
    }
    if stats.files == 0 {
        return Err(CopyError::Invalid("the output directory is empty".into()));
    }
    Ok(stats)
}

/// The part of an archive path below its top directory, if it stays inside.
fn inside(path: &Path) -> Option<PathBuf> {
    let mut parts = path.components();
    match parts.next()? {
        Component::Normal(_) => {}
        _ => return None,
    }
    let mut out = PathBuf::new();
    for part in parts {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(
            inside(Path::new("dist/a/b.js")),
            Some(PathBuf::from("a/b.js"))
        );
        assert_eq!(inside(Path::new("dist")), None);
        assert_eq!(inside(Path::new("dist/../etc/passwd")), None);
        assert_eq!(inside(Path::new("/etc/passwd")), None);
    }

    #[test]
    fn unpack_skips_links_and_caps_size() {
        let dir = tempfile::TempDir::new().unwrap();
        let archive = dir.path().join("a.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        let mut add = |path: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        };
        add("dist/index.html", b"<h1>hi</h1>");
        add("dist/assets/app.js", b"console.log(1)");
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_cksum();
        builder
            .append_link(&mut link, "dist/secret", "/etc/shadow")
            .unwrap();
        builder.finish().unwrap();
        drop(builder);
        let dest = dir.path().join("site");
        let stats = unpack(&archive, &dest, 1024).unwrap();
        assert_eq!((stats.files, stats.skipped), (2, 1));
        assert_eq!(
            std::fs::read(dest.join("index.html")).unwrap(),
            b"<h1>hi</h1>"
        );
        assert!(!dest.join("secret").exists());
        let small = dir.path().join("small");
        assert!(matches!(
            unpack(&archive, &small, 5),
            Err(CopyError::TooLarge(_))
        ));
    }
}
