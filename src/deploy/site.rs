//! Static sites: instead of starting a container, the pipeline copies the project's
//! `static_dir` out of the built image into `<data_dir>/sites/<deployment>/`, which the proxy
//! serves itself. The deployment's `upstream` is then `static`. A rollback copies the kept
//! image's files again; superseded sites are removed after the switch.

use std::path::{Path, PathBuf};

use super::DeploymentStatus as S;
use super::pipeline::{Pipeline, Stop, failed};
use crate::db::deployments::Fields;
use crate::docker::CopyError;

/// The `upstream` of a deployment whose files shard serves.
pub const STATIC_UPSTREAM: &str = crate::model::upstream::STATIC;

/// Where a static deployment's files live.
pub fn site_dir(data_dir: &Path, deployment: uuid::Uuid) -> PathBuf {
    data_dir.join("sites").join(deployment.simple().to_string())
}

/// Removes a deployment's site files, if any.
pub async fn remove_site(data_dir: &Path, deployment: uuid::Uuid) {
    let dir = site_dir(data_dir, deployment);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a site");
    }
}

impl Pipeline {
    /// Copies the site out of `image` and moves the deployment to health-checking, ready for
    /// the switch.
    pub(super) async fn publish_site(&mut self, image: &str, dir: &str) -> Result<(), Stop> {
        self.log
            .system(format!("==> Copying the site from {dir} of the image"))
            .await;
        let dest = site_dir(&self.d.config.data_dir, self.deployment.id);
        let _ = tokio::fs::remove_dir_all(&dest).await;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| failed("start", format!("cannot create the sites directory: {e}")))?;
        }
        let limit = self.d.config.deploy.max_site_mb * 1024 * 1024;
        let labels = self.d.docker.labels(self.project.id, self.deployment.id);
        let copied = self
            .d
            .docker
            .copy_out(image, dir, labels, &dest, limit)
            .await
            .map_err(|e| match e {
                CopyError::TooLarge(mb) => failed(
                    "start",
                    format!("the site is larger than {mb} MiB (deploy.max_site_mb)"),
                ),
                other => failed("start", other.to_string()),
            })?;
        let mut summary = format!(
            "==> Site ready: {} files, {} KiB",
            copied.files,
            copied.bytes.div_ceil(1024)
        );
        if copied.skipped > 0 {
            summary.push_str(&format!(
                " ({} links or special files left out)",
                copied.skipped
            ));
        }
        if !dest.join("index.html").is_file() {
            summary.push_str("; no index.html at the top, so / answers 404");
        }
        self.log.system(summary).await;
        let fields = Fields {
            upstream: Some(STATIC_UPSTREAM.into()),
            ..Fields::default()
        };
        let advanced = self
            .advance(&[S::Starting], S::HealthChecking, fields)
            .await;
        if advanced.is_err() {
            remove_site(&self.d.config.data_dir, self.deployment.id).await;
        }
        advanced
    }
}
