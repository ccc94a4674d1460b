//! The build step: what to build (the project's Dockerfile, or for `build_type: "auto"` the
//! build plan's, logged first as `==> Plan` lines), then `shard/<slug>:<deployment>` from the
//! tarred checkout (a file, streamed) within `deploy.build_timeout_secs` and the
//! `[deploy] build_*` limits (memory and CPU per step, processes for the whole build through
//! its cgroup), build args = env vars marked `build`. Output lines (cut at
//! `deploy.max_log_line_bytes`) go through a bounded channel to the `LogWriter`. A build
//! Docker's builder breaks by losing an image mid-read ("unable to find image sha256:…": an
//! image another deploy's pruning removed while the builder's cache lookup inspected it) runs
//! once more from a fresh context.
//!
//! An `auto` build's context is its plan's `root_dir`; a plan whose output is a site labels
//! the image `shard.site` (its `/site` is copied out and served, no container runs), which is
//! also how a rollback to that image knows it is a site.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::{GIT_TOKEN_VAR, OpenVar};
use super::pipeline::{Pipeline, Stop, failed};
use super::{DeployError, Deployer};
use crate::build;
use crate::db::projects::Project;
use crate::docker::{BuildError, BuildSpec, LABEL_SITE, context};
use crate::model::BuildType;

/// The Dockerfile a build uses.
#[derive(Debug, Clone)]
enum Source {
    /// The repository's, at this path of the context.
    InTree(String),
    /// The build plan's.
    Generated(String),
}

/// The planner's inputs for `project`: its overrides, its Dockerfile path, the names of the
/// variables passed to the build (sorted) and where its volumes are mounted.
pub fn plan_settings(
    project: &Project,
    build_args: Vec<String>,
    volume_paths: Vec<String>,
) -> build::Settings {
    let mut build_args = build_args;
    build_args.sort();
    build::Settings {
        project: build::Overrides {
            root_dir: project.root_dir.clone(),
            install_command: project.install_command.clone(),
            build_command: project.build_command.clone(),
            start_command: project.start_command.clone(),
            static_dir: project.static_dir.clone(),
        },
        dockerfile: project.dockerfile.clone(),
        build_args,
        volume_paths,
    }
}

/// Where `project`'s volumes are mounted, sorted.
async fn volume_paths(
    db: &crate::db::Db,
    project: uuid::Uuid,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let mut paths: Vec<String> = crate::db::volumes::for_project(db, project)
        .await?
        .into_iter()
        .map(|v| v.mount_path)
        .collect();
    paths.sort();
    Ok(paths)
}

/// The names of the build variables among `opened`.
fn build_arg_names(opened: &[OpenVar]) -> Vec<String> {
    opened
        .iter()
        .filter(|v| v.build && v.key != GIT_TOKEN_VAR)
        .map(|v| v.key.clone())
        .collect()
}

impl Pipeline {
    /// Builds the checkout in `build_dir`; answers the image and, when the build is a site,
    /// the directory of the image that holds it.
    pub(super) async fn build_image(
        &mut self,
        build_dir: &Path,
        opened: &[OpenVar],
    ) -> Result<(String, Option<String>), Stop> {
        let p = self.project.clone();
        let (root, source, site) = self.build_source(build_dir, opened).await?;
        // Under Swarm an app's image is named for the registry every node pulls from.
        let local = format!("shard/{}:{}", p.slug, self.deployment.id);
        let tag = match self.d.config.image_registry() {
            Some(registry) if p.build_type != BuildType::Static && site.is_none() => {
                format!("{registry}/shard/{}:{}", p.slug, self.deployment.id)
            }
            _ => local.clone(),
        };
        self.log.system(format!("==> Building {tag}")).await;
        let build_args: HashMap<String, String> = opened
            .iter()
            .filter(|v| v.build && v.key != GIT_TOKEN_VAR)
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        let mut labels = self.d.docker.labels(p.id, self.deployment.id);
        if let Some(dir) = &site {
            labels.insert(LABEL_SITE.to_string(), dir.clone());
        }
        // The context goes to a file beside the checkout and streams to Docker from there.
        let context_file = build_dir.with_extension("tar");
        let (name, limits) = (
            self.deployment.id.to_string(),
            build_limits(&self.d.config.deploy),
        );
        let dockerfile = match &source {
            Source::InTree(path) => path.clone(),
            Source::Generated(_) => context::GENERATED_DOCKERFILE.to_string(),
        };
        let spec = |context| BuildSpec {
            tag: tag.clone(),
            dockerfile: dockerfile.clone(),
            context,
            build_args: build_args.clone(),
            labels: labels.clone(),
            name: name.clone(),
            limits,
        };
        let mut built = match build_context(&root, &source, &context_file).await {
            Ok(context) => self.build(spec(context)).await,
            Err(stop) => Err(stop),
        };
        if let Err(Stop::Failed { message, .. }) = &built
            && message.contains(ENGINE_LOST_IMAGE)
        {
            // Docker's builder looked at an image another deploy's pruning removed that very
            // moment (not the app's fault): once more, from a fresh context.
            self.log
                .system(
                    "==> Docker lost an image it was reading (removed meanwhile); building again"
                        .into(),
                )
                .await;
            built = match build_context(&root, &source, &context_file).await {
                Ok(context) => self.build(spec(context)).await,
                Err(stop) => Err(stop),
            };
        }
        if built.is_ok() && tag != local {
            built = self.push_image(&tag).await;
        }
        match built {
            Ok(()) => Ok((tag, site)),
            Err(stop) => {
                let _ = self.d.docker.remove_image(&tag).await;
                Err(stop)
            }
        }
    }

    /// What to build: the project's Dockerfile, or (`auto`) the plan's, logged.
    async fn build_source(
        &mut self,
        build_dir: &Path,
        opened: &[OpenVar],
    ) -> Result<(PathBuf, Source, Option<String>), Stop> {
        let p = &self.project;
        let own = Source::InTree(p.dockerfile.clone());
        match p.build_type {
            BuildType::Dockerfile => return Ok((build_dir.to_path_buf(), own, None)),
            BuildType::Static => return Ok((build_dir.to_path_buf(), own, p.static_dir.clone())),
            BuildType::Auto => {}
        }
        let paths = volume_paths(&self.d.db, p.id).await?;
        let settings = plan_settings(p, build_arg_names(opened), paths);
        let (dir, config) = (build_dir.to_path_buf(), self.d.config.build.clone());
        let planned = tokio::task::spawn_blocking(move || build::plan(&dir, &settings, &config))
            .await
            .map_err(|e| anyhow::anyhow!("plan task: {e}"))?;
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => return Err(failed("plan", e.to_string())),
        };
        for line in plan.log_lines() {
            self.log.system(line).await;
        }
        let root = match plan.root_dir.as_str() {
            "." => build_dir.to_path_buf(),
            dir => build_dir.join(dir),
        };
        Ok(if plan.language == "dockerfile" {
            (root, Source::InTree(p.dockerfile.clone()), None)
        } else {
            let site = plan.is_static().then(|| build::SITE_DIR.to_string());
            (root, Source::Generated(plan.dockerfile), site)
        })
    }

    /// Runs the build with its timeout, feeding the output to the log as it arrives.
    async fn build(&mut self, spec: BuildSpec) -> Result<(), Stop> {
        let timeout = Duration::from_secs(self.d.config.deploy.build_timeout_secs);
        let max_line = self.d.config.deploy.max_log_line_bytes;
        let (lines, mut output) = tokio::sync::mpsc::channel::<String>(256);
        let build_cancel = self.cancel.child_token();
        let build = self
            .d
            .docker
            .build_image(spec, &build_cancel, max_line, lines);
        let log = &self.log;
        let forward = async {
            while let Some(line) = output.recv().await {
                log.stdout(line).await;
            }
        };
        let (result, ()) = tokio::join!(
            async { tokio::time::timeout(timeout, build).await.ok() },
            forward
        );
        match result {
            None => Err(failed(
                "build",
                format!(
                    "the build took longer than {} s (deploy.build_timeout_secs)",
                    timeout.as_secs()
                ),
            )),
            Some(Ok(())) => Ok(()),
            Some(Err(BuildError::Cancelled)) => Err(Stop::Cancelled),
            Some(Err(BuildError::Failed { message, step })) => {
                let mut text = match step {
                    Some(step) => format!("{step}: {message}"),
                    None => message,
                };
                text.push_str("\n--- last lines ---\n");
                text.push_str(&self.log.tail().join("\n"));
                Err(failed("build", text))
            }
            Some(Err(BuildError::Engine(e))) => Err(failed("build", e.to_string())),
        }
    }
}

/// How Docker's builder fails when an image it was reading is removed under it.
const ENGINE_LOST_IMAGE: &str = "unable to find image \"sha256:";

/// The limits every build runs under (`[deploy] build_*`); a CPU limit of 0 means all the
/// host's CPUs but one (at least one), so a build never starves the apps.
fn build_limits(deploy: &crate::config::DeployConfig) -> crate::docker::BuildLimits {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let cpu_millis = match deploy.build_cpu_millis {
        0 => cpus.saturating_sub(1).max(1) * 1000,
        millis => millis,
    };
    crate::docker::BuildLimits {
        memory_bytes: (deploy.build_memory_mb > 0).then_some(deploy.build_memory_mb << 20),
        cpu_millis: Some(cpu_millis),
        pids: (deploy.build_pids > 0).then_some(deploy.build_pids),
    }
}

/// Writes the build context of `root` to `file` (the Dockerfile checked, or the plan's added)
/// and answers its path.
async fn build_context(root: &Path, dockerfile: &Source, file: &Path) -> Result<PathBuf, Stop> {
    let (root, dockerfile, out) = (root.to_path_buf(), dockerfile.clone(), file.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let dockerfile = match &dockerfile {
            Source::InTree(path) => {
                if !context::is_regular_file_in(&root, path)? {
                    anyhow::bail!("no Dockerfile at '{path}' in the repository");
                }
                context::Dockerfile::InTree(path)
            }
            Source::Generated(text) => context::Dockerfile::Generated(text),
        };
        context::tar_context_file(&root, dockerfile, &out)?;
        Ok(out)
    })
    .await
    .map_err(|e| anyhow::anyhow!("context task: {e}"))?
    .map_err(|e| failed("build", format!("{e:#}")))
}

/// Plans made at once by `GET /projects/{id}/plan` (each fetches a repository).
pub const PLANS_AT_ONCE: usize = 2;
/// How long a plan request waits for its turn.
const PLAN_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// A plan's checkout, removed when it goes (also when the request is dropped mid-fetch).
struct PlanDir(PathBuf);

impl Drop for PlanDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `<data_dir>/plans`: checkouts of plans being made.
pub fn plans_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("plans")
}

impl Deployer {
    /// Plans `project`'s branch tip without building: fetched like a deploy (same source
    /// checks, credentials, time and size limits) into a directory of its own, planned,
    /// removed.
    pub async fn plan_tip(&self, project: &Project) -> Result<build::Plan, DeployError> {
        // Plans take turns (a dashboard asks for one per page it shows); a wait past
        // `PLAN_QUEUE_WAIT` is a 503 to retry.
        let permit = tokio::time::timeout(PLAN_QUEUE_WAIT, self.planning.acquire()).await;
        let _permit = match permit {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(DeployError::Unavailable(format!(
                    "{PLANS_AT_ONCE} plans are being made already; try again in a moment"
                )));
            }
        };
        let fetch_failed = |stop: Stop| match stop {
            Stop::Failed { message, .. } => DeployError::Invalid {
                field: "git_url",
                message: format!("cannot fetch the repository: {message}"),
            },
            Stop::Cancelled | Stop::Preempted => {
                DeployError::Internal(anyhow::anyhow!("the fetch was interrupted"))
            }
        };
        let vars = crate::db::env_vars::list(&self.db, project.id).await?;
        let opened = super::env::open_all(&self.sealer, &vars)?;
        self.check_source(project).await.map_err(fetch_failed)?;
        let (token, _) = self
            .git_token(project, &opened)
            .await
            .map_err(fetch_failed)?;
        let dir = PlanDir(plans_dir(&self.config.data_dir).join(uuid::Uuid::new_v4().to_string()));
        let cancel = tokio_util::sync::CancellationToken::new();
        let _stop_on_drop = cancel.clone().drop_guard();
        self.fetch_source(project, None, &dir.0, token, &cancel)
            .await
            .map_err(fetch_failed)?;
        let paths = volume_paths(&self.db, project.id).await?;
        let settings = plan_settings(project, build_arg_names(&opened), paths);
        let config = self.config.build.clone();
        let root = dir.0.clone();
        let planned = tokio::task::spawn_blocking(move || build::plan(&root, &settings, &config))
            .await
            .map_err(|e| anyhow::anyhow!("plan task: {e}"))?;
        drop(dir);
        planned.map_err(|e| DeployError::Invalid {
            field: "plan",
            message: e.to_string(),
        })
    }
}
