//! One-click databases: `Databases` creates, starts, stops and deletes them and attaches them
//! to projects. Each runs in a container of its own (`docker::databases`) with a volume of its
//! own, generated credentials sealed at rest, no published port (an admin may publish one),
//! and the memory limit of `[databases]`. Commands that check it run inside its container
//! through the engine. Attaching joins it to the project's network under its name; the
//! project's next deployment gets its connection variables (`connection_env`), as secrets.
//!
//! A database comes up in the background: it is `starting` until it accepts connections
//! (checked with its own client, `pg_isready`, `mariadb-admin ping`, `redis-cli ping`), then
//! `running`, or `failed` with the reason after `databases.start_timeout_secs`. A restart of
//! shard picks up a database still starting, and starts one whose container went missing.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::config::{Config, RuntimeKind};
use crate::db::databases::{Database, NewDatabase};
use crate::db::{self, Db};
use crate::docker::{DatabaseRun, Engine, EngineError};
use crate::model::{DatabaseKind, DatabaseState};
use crate::secrets::Sealer;

/// Why a request about a database cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for StorageError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

impl From<EngineError> for StorageError {
    fn from(e: EngineError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

pub use super::connection::{
    Connection, Credentials, connection, connection_env, container_name, credentials,
};
use super::connection::{interface, password, ready_command};

pub struct Databases {
    pub(super) db: Db,
    pub(super) docker: Arc<Engine>,
    pub(super) sealer: Arc<Sealer>,
    pub(super) config: Arc<Config>,
    /// Where `backup.failed` goes.
    pub(super) notifier: Arc<crate::notifications::Notifier>,
    /// Backups being verified now (one check of a backup at a time).
    pub(super) checking: std::sync::Mutex<std::collections::HashSet<Uuid>>,
    /// This process's name on the backups it runs and the throwaway containers it makes:
    /// the same across restarts on one data dir, different for each instance.
    pub(super) runner: String,
}

/// The runner name kept in the data dir (`runner-id`, made on first use); a fresh one when
/// it cannot be kept.
fn runner_of(data_dir: &std::path::Path) -> String {
    let file = data_dir.join("runner-id");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(id) = Uuid::parse_str(text.trim())
    {
        return id.simple().to_string();
    }
    let id = Uuid::new_v4();
    if let Err(e) = std::fs::write(&file, id.to_string()) {
        tracing::warn!(error = %e, "cannot keep the runner id; backups cut off by a restart are failed only when their heartbeat is stale");
    }
    id.simple().to_string()
}

impl Databases {
    pub fn new(
        db: Db,
        docker: Arc<Engine>,
        sealer: Arc<Sealer>,
        config: Arc<Config>,
        notifier: Arc<crate::notifications::Notifier>,
    ) -> Self {
        Self {
            notifier,
            db,
            docker,
            sealer,
            runner: runner_of(&config.data_dir),
            config,
            checking: Default::default(),
        }
    }

    /// Creates database `name` of `kind` for `team`; it comes up in the background.
    pub async fn create(
        self: &Arc<Self>,
        team: Option<Uuid>,
        name: &str,
        kind: DatabaseKind,
        version: Option<&str>,
        by: Option<Uuid>,
    ) -> Result<Database, StorageError> {
        if self.config.runtime.kind == RuntimeKind::Swarm {
            return Err(StorageError::Conflict(
                "one-click databases run on plain Docker; this installation runs Swarm".into(),
            ));
        }
        let (template, default) = self.image_of(kind);
        let version = version.unwrap_or(default);
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if version.is_empty() || version.len() > 32 || !version.chars().all(plain) {
            return Err(StorageError::Invalid {
                field: "version",
                message: "letters, digits, '.', '-' and '_', at most 32, e.g. 16".into(),
            });
        }
        let id = Uuid::now_v7();
        let credentials = Credentials {
            user: if kind == DatabaseKind::Redis {
                "default".into()
            } else {
                "app".into()
            },
            password: password(),
            database: if kind == DatabaseKind::Redis {
                "0".into()
            } else {
                name.replace('-', "_")
            },
            root_password: matches!(kind, DatabaseKind::Mysql | DatabaseKind::Mariadb)
                .then(password),
        };
        let sealed = self.sealer.seal(
            &serde_json::to_vec(&credentials).map_err(anyhow::Error::from)?,
            id.as_bytes(),
        );
        let new = NewDatabase {
            id,
            team_id: team,
            name: name.to_string(),
            kind,
            version: version.to_string(),
            image: template.replace("{version}", version),
            credentials: sealed,
            memory_limit_mb: self.config.databases.memory_limit_mb as i32,
            created_by: by,
        };
        let database = match db::databases::add(&self.db, new).await {
            Ok(database) => database,
            Err(db::databases::AddError::Taken) => {
                return Err(StorageError::Conflict(format!(
                    "the team already has a database named '{name}'"
                )));
            }
            Err(db::databases::AddError::Db(e)) => return Err(e.into()),
        };
        if let Err(e) = self.docker.create_volume(&database.docker_volume, id).await {
            db::databases::delete(&self.db, id).await?;
            return Err(e.into());
        }
        self.launch(database.clone());
        Ok(database)
    }

    /// `kind`'s image template and default version.
    pub(super) fn image_of(&self, kind: DatabaseKind) -> (&String, &String) {
        let (images, versions) = (
            &self.config.databases.images,
            &self.config.databases.versions,
        );
        match kind {
            DatabaseKind::Postgres => (&images.postgres, &versions.postgres),
            DatabaseKind::Mysql => (&images.mysql, &versions.mysql),
            DatabaseKind::Mariadb => (&images.mariadb, &versions.mariadb),
            DatabaseKind::Redis => (&images.redis, &versions.redis),
        }
    }

    /// Starts `database`'s container (anew) in the background and watches it come up.
    fn launch(self: &Arc<Self>, database: Database) {
        let this = self.clone();
        tokio::spawn(async move {
            let id = database.id;
            if let Err(e) = this.bring_up(database).await {
                let message = format!("{e:#}");
                tracing::warn!(database = %id, error = %message, "a database did not come up");
                let _ = db::databases::set_state(
                    &this.db,
                    id,
                    DatabaseState::Failed,
                    Some(message.chars().take(2000).collect()),
                    None,
                )
                .await;
            }
        });
    }

    pub(super) async fn bring_up(&self, database: Database) -> anyhow::Result<()> {
        let c = credentials(&self.sealer, &database)?;
        let (env, cmd) = interface(&database, &c);
        let network = self
            .docker
            .ensure_database_network(database.id, &self.config.containers.subnets())
            .await?;
        let run = DatabaseRun {
            id: database.id,
            name: container_name(&database),
            image: database.image.clone(),
            env,
            cmd,
            volume: database.docker_volume.clone(),
            data_dir: database.kind.data_dir().into(),
            port: database.kind.port(),
            public_port: database.public_port.map(|p| p as u16),
            memory_mb: i64::from(database.memory_limit_mb),
            throwaway: None,
            seed: None,
        };
        db::databases::set_state(&self.db, database.id, DatabaseState::Starting, None, None)
            .await?;
        let container = self.docker.run_database(run, &network).await?;
        db::databases::set_state(
            &self.db,
            database.id,
            DatabaseState::Starting,
            None,
            Some(container.clone()),
        )
        .await?;
        self.join_projects(&database, &container).await?;
        self.wait_ready(&database, &container).await
    }

    /// Joins the container to the network of every project it is attached to.
    async fn join_projects(&self, database: &Database, container: &str) -> anyhow::Result<()> {
        for project in db::databases::attached_projects(&self.db, database.id).await? {
            let network = self
                .docker
                .ensure_network(project, &self.config.containers.subnets())
                .await?;
            self.docker
                .connect_network(&network, container, &database.name)
                .await?;
        }
        Ok(())
    }

    /// Waits until the database accepts connections, then records it `running`.
    async fn wait_ready(&self, database: &Database, container: &str) -> anyhow::Result<()> {
        let c = credentials(&self.sealer, database)?;
        self.until_ready(database.kind, &c, container).await?;
        db::databases::set_state(&self.db, database.id, DatabaseState::Running, None, None).await?;
        Ok(())
    }

    /// Waits until the database in `container` accepts connections (checked with its own
    /// client), at most `databases.start_timeout_secs`.
    pub(super) async fn until_ready(
        &self,
        kind: DatabaseKind,
        c: &Credentials,
        container: &str,
    ) -> anyhow::Result<()> {
        let command = ready_command(kind, c);
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.config.databases.start_timeout_secs);
        loop {
            let status = self.docker.container_status(container).await?;
            match status {
                None => anyhow::bail!("its container is gone"),
                Some(s) if !s.running && s.exit_code.is_some_and(|c| c != 0) => {
                    let output = self
                        .docker
                        .tail_logs(container, 20)
                        .await
                        .unwrap_or_default();
                    anyhow::bail!(
                        "it exited with code {}:\n{}",
                        s.exit_code.unwrap_or_default(),
                        output.join("\n")
                    );
                }
                _ => {}
            }
            if self.docker.exec_status(container, &words).await.ok() == Some(0) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let output = self
                    .docker
                    .tail_logs(container, 20)
                    .await
                    .unwrap_or_default();
                anyhow::bail!(
                    "it did not accept connections within {} s (databases.start_timeout_secs):\n{}",
                    self.config.databases.start_timeout_secs,
                    output.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts a stopped (or failed) database again.
    pub async fn start(self: &Arc<Self>, database: Database) -> Result<(), StorageError> {
        db::databases::set_state(&self.db, database.id, DatabaseState::Starting, None, None)
            .await?;
        self.launch(database);
        Ok(())
    }

    /// Stops the database (its data stays in its volume).
    pub async fn stop(&self, database: &Database) -> Result<(), StorageError> {
        if let Some(container) = &database.container_id {
            match self.docker.stop_container(container, 30).await {
                Ok(()) => {}
                Err(e) if self.docker.container_status(container).await?.is_none() => {
                    tracing::debug!(error = %e, "the database's container was gone already");
                }
                Err(e) => return Err(e.into()),
            }
        }
        db::databases::set_state(&self.db, database.id, DatabaseState::Stopped, None, None).await?;
        Ok(())
    }

    /// Publishes the database on `port` of every address of this host, or stops publishing
    /// it; the container is made again (its data stays in its volume).
    pub async fn set_public_port(
        self: &Arc<Self>,
        database: Database,
        port: Option<u16>,
    ) -> Result<Database, StorageError> {
        if port.is_some_and(|p| p < 1024) {
            return Err(StorageError::Invalid {
                field: "public_port",
                message: "must be 1024 to 65535".into(),
            });
        }
        db::databases::set_public_port(&self.db, database.id, port.map(i32::from)).await?;
        let updated = db::databases::find(&self.db, database.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the database went away"))?;
        self.start(updated.clone()).await?;
        Ok(updated)
    }

    /// Attaches `database` to `project` (same team): the project can reach it under its name
    /// and its next deployment gets the connection variables.
    pub async fn attach(
        &self,
        database: &Database,
        project: &db::projects::Project,
    ) -> Result<(), StorageError> {
        if database.team_id != project.team_id {
            return Err(StorageError::Conflict(
                "a database can be attached only to projects of its own team".into(),
            ));
        }
        for other in db::databases::attached_to(&self.db, project.id).await? {
            if other.id != database.id && other.kind.is_sql() == database.kind.is_sql() {
                let var = if other.kind.is_sql() {
                    "DATABASE_URL"
                } else {
                    "REDIS_URL"
                };
                return Err(StorageError::Conflict(format!(
                    "the project already gets {var} from database '{}'; detach it first",
                    other.name
                )));
            }
        }
        db::databases::attach(&self.db, database.id, project.id).await?;
        if let Some(container) = &database.container_id {
            let network = self
                .docker
                .ensure_network(project.id, &self.config.containers.subnets())
                .await?;
            self.docker
                .connect_network(&network, container, &database.name)
                .await?;
        }
        Ok(())
    }

    /// Detaches: the project can no longer reach it, and its next deployment lacks the
    /// variables. False when it was not attached.
    pub async fn detach(&self, database: &Database, project: Uuid) -> Result<bool, StorageError> {
        if !db::databases::detach(&self.db, database.id, project).await? {
            return Ok(false);
        }
        if let Some(container) = &database.container_id {
            self.docker
                .disconnect_network(&format!("shard-{}", project.simple()), container)
                .await?;
        }
        Ok(true)
    }

    /// Takes the database off every project's network (before its projects' networks go).
    pub async fn leave_project(&self, project: Uuid) -> Result<(), StorageError> {
        for database in db::databases::attached_to(&self.db, project).await? {
            self.detach(&database, project).await?;
        }
        Ok(())
    }

    /// Deletes the database, its container and its data, for good.
    pub async fn delete(&self, database: &Database) -> Result<(), StorageError> {
        self.docker
            .remove_database(
                database.id,
                &container_name(database),
                Some(&database.docker_volume),
            )
            .await?;
        db::databases::delete(&self.db, database.id).await?;
        Ok(())
    }

    /// The last `lines` lines of the database's output.
    pub async fn logs(
        &self,
        database: &Database,
        lines: usize,
    ) -> Result<Vec<String>, StorageError> {
        match &database.container_id {
            Some(container) => Ok(self.docker.tail_logs(container, lines).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Its container's use now: two readings half a second apart (CPU % needs an interval);
    /// none when it is not running.
    pub async fn usage(
        &self,
        database: &Database,
    ) -> Result<Option<(crate::docker::StatsReading, Option<f64>)>, StorageError> {
        let Some(container) = &database.container_id else {
            return Ok(None);
        };
        let Some(first) = self.docker.stats(container).await? else {
            return Ok(None);
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(second) = self.docker.stats(container).await? else {
            return Ok(None);
        };
        let cpu = second.cpu_percent(&first);
        Ok(Some((second, cpu)))
    }

    /// At startup: a database left `starting` is watched again; a `running` one whose
    /// container went missing is started anew.
    pub async fn recover(self: &Arc<Self>) -> anyhow::Result<()> {
        for database in db::databases::list(&self.db, None).await? {
            let container = match &database.container_id {
                Some(c) => self.docker.container_status(c).await?,
                None => None,
            };
            let running = container.as_ref().is_some_and(|c| c.running);
            match (database.status, &database.container_id) {
                // Still initialising, perhaps: watched, not made again mid-way.
                (DatabaseState::Starting, Some(id)) if running => {
                    let (this, id) = (self.clone(), id.clone());
                    tokio::spawn(async move {
                        if let Err(e) = this.wait_ready(&database, &id).await {
                            let message: String = format!("{e:#}").chars().take(2000).collect();
                            let failed = DatabaseState::Failed;
                            let _ = db::databases::set_state(
                                &this.db,
                                database.id,
                                failed,
                                Some(message),
                                None,
                            )
                            .await;
                        }
                    });
                }
                (DatabaseState::Starting, _) => self.launch(database),
                // A restore runs in one transaction: cut off, it changed nothing.
                (DatabaseState::Restoring, _) if running => {
                    let why = "a restore was cut off by a stop of shard; it ran in one \
                               transaction, so the data is as it was before it";
                    db::databases::set_state(
                        &self.db,
                        database.id,
                        DatabaseState::Running,
                        Some(why.into()),
                        None,
                    )
                    .await?;
                }
                (DatabaseState::Restoring, _) => self.launch(database),
                (DatabaseState::Running, _) if container.is_none() => self.launch(database),
                _ => {}
            }
        }
        Ok(())
    }
}
