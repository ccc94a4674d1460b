//! Volume usage: the bytes each volume holds, sampled every few minutes with the metrics'
//! roll-ups by walking the volume's directory on this host (never following a link, at most
//! `MAX_ENTRIES` entries). An engine on another machine leaves the sizes unknown.

use std::path::{Path, PathBuf};

use crate::db::{self, Db};
use crate::docker::Engine;

/// Entries one walk reads; a volume with more is reported at what was counted by then.
const MAX_ENTRIES: usize = 1_000_000;

/// Samples every volume's size; answers how many were measured.
pub async fn sample(db: &Db, docker: &Engine) -> anyhow::Result<usize> {
    let mut measured = 0;
    for volume in db::volumes::list(db).await? {
        let Some(dir) = docker.volume_dir(&volume.docker_name).await? else {
            continue;
        };
        let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
            .await
            .map_err(|e| anyhow::anyhow!("volume size task: {e}"))?;
        if let Some(bytes) = bytes {
            db::volumes::set_size(db, volume.id, i64::try_from(bytes).unwrap_or(i64::MAX)).await?;
            measured += 1;
        }
    }
    Ok(measured)
}

/// Bytes of the regular files under `dir`; `None` when it cannot be read here.
fn dir_bytes(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?;
    let (mut total, mut seen) = (0u64, 0usize);
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return Some(total);
            }
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_count_files_and_never_follow_links() {
        let dir = tempfile::TempDir::new().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        assert_eq!(super::dir_bytes(dir.path()), Some(1024));
        assert_eq!(super::dir_bytes(&dir.path().join("missing")), None);
    }
}
