//! Build directories: `<data_dir>/builds/<deployment>` holds one deploy's checkout while it
//! builds. Each is removed when its deploy ends; the recovery sweep removes any a crash left.

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// `<data_dir>/builds/<deployment>`: where a deploy checks out its repository.
pub fn build_dir(data_dir: &Path, deployment: Uuid) -> PathBuf {
    data_dir.join("builds").join(deployment.to_string())
}

pub async fn remove_dir(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a build directory");
    }
}

/// Bytes under `root` (symlinks counted as links, never followed), stopping once past `limit`.
pub fn checkout_size(root: &Path, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(entry.path());
                }
            } else {
                total += meta.len();
                if total > limit {
                    return total;
                }
            }
        }
    }
    total
}
