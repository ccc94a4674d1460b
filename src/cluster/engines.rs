//! Several instances on one Postgres with plain containers (`runtime.kind = "docker"`) must
//! share one Docker engine: a container's upstream is `127.0.0.1:<port>` on the engine that
//! ran it, so an instance on another machine would route it to whatever listens on that port
//! there. Each such instance writes its engine's id to `shared_values` (`docker-engine:<id>`,
//! rewritten every `BEAT`, expiring after `FRESH`) and reads the others'; engines other than
//! its own make a warning, logged once per change and shown to admins on the Nodes page.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::RuntimeKind;
use crate::db::{self, Db};
use crate::docker::Engine;
use crate::secrets::Sealer;

/// How often an instance says which engine it drives.
pub const BEAT: Duration = Duration::from_secs(60);
/// How long an engine counts as in use after its instance last said so.
const FRESH: Duration = Duration::from_secs(180);
const PREFIX: &str = "docker-engine:";

/// What this instance found out about the engines of the instances on its database.
#[derive(Clone)]
pub struct Engines {
    /// Whether there is anything to compare: Postgres (several instances possible) and plain
    /// containers.
    applies: bool,
    db: Db,
    sealer: Arc<Sealer>,
    pub(super) docker: Arc<Engine>,
    warning: Arc<Mutex<Option<String>>>,
}

impl Engines {
    pub fn new(db: Db, sealer: Arc<Sealer>, docker: Arc<Engine>, runtime: RuntimeKind) -> Self {
        Self {
            applies: runtime == RuntimeKind::Docker && db::is_postgres(&db),
            db,
            sealer,
            docker,
            warning: Arc::default(),
        }
    }

    /// Why this installation's instances cannot all reach their apps, if they cannot.
    pub fn warning(&self) -> Option<String> {
        self.warning
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, warning: Option<String>) {
        let mut held = self.warning.lock().unwrap_or_else(PoisonError::into_inner);
        if *held != warning {
            match &warning {
                Some(text) => tracing::error!("{text}"),
                None if held.is_some() => {
                    tracing::info!("every instance drives the same Docker engine again")
                }
                None => {}
            }
            *held = warning;
        }
    }

    /// Says which engine this instance drives and compares it with the others', every
    /// `BEAT` until shutdown (nothing to do with SQLite, one instance, or under Swarm).
    pub async fn watch(self, shutdown: CancellationToken) {
        if !self.applies {
            return;
        }
        let mut ticker = tokio::time::interval(BEAT);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            self.refresh().await;
        }
    }

    /// Says which engine this instance drives, compares, and answers the warning (the last
    /// one known when the comparison cannot be made now).
    pub async fn refresh(&self) -> Option<String> {
        if !self.applies {
            return None;
        }
        match compare(&self.db, &self.sealer, &self.docker).await {
            Ok(warning) => self.set(warning),
            Err(e) => tracing::debug!(error = %e, "cannot compare Docker engines yet"),
        }
        self.warning()
    }
}

async fn compare(db: &Db, sealer: &Sealer, docker: &Engine) -> anyhow::Result<Option<String>> {
    let (id, name) = docker.identity().await?;
    if id.is_empty() {
        return Ok(None);
    }
    let own = format!("{PREFIX}{id}");
    let expires = Utc::now() + chrono::Duration::from_std(FRESH)?;
    db::shared::put(db, sealer, &own, name.as_bytes(), Some(expires)).await?;
    let since = Utc::now() - chrono::Duration::from_std(FRESH)?;
    let mut others = Vec::new();
    for (key, written) in db::shared::versions(db, PREFIX).await? {
        if key == own || written < since {
            continue;
        }
        let name = db::shared::get(db, sealer, &key).await?;
        let name = name.map(|n| String::from_utf8_lossy(&n).into_owned());
        others.push(match name {
            Some(name) if !name.is_empty() => name,
            _ => key.trim_start_matches(PREFIX).chars().take(12).collect(),
        });
    }
    Ok(warning(&name, &others))
}

/// The warning for an instance on engine `own` seeing `others` in use too.
fn warning(own: &str, others: &[String]) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    Some(format!(
        "shard instances on this database drive {} Docker engines (this one on '{own}', others on {}) with runtime.kind = \"docker\": an app started by one instance is reachable only on its engine's machine, so the others cannot route it. Point every instance at one engine (docker.host), or run apps on Docker Swarm (runtime.kind = \"swarm\")",
        others.len() + 1,
        others
            .iter()
            .map(|o| format!("'{o}'"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_engine_is_fine_two_are_named() {
        assert_eq!(warning("vm1", &[]), None);
        let text = warning("vm1", &["vm2".into()]).unwrap();
        assert!(text.contains("2 Docker engines"), "{text}");
        assert!(text.contains("'vm1'") && text.contains("'vm2'"), "{text}");
    }
}
