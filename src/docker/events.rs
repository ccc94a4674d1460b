//! The engine's event stream, narrowed to this installation's containers starting and dying.

use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::{Engine, EngineError, LABEL_DEPLOYMENT, LABEL_PROJECT};

/// What happened to one of shard's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerChange {
    Started,
    Died,
}

#[derive(Debug, Clone)]
pub struct ContainerEvent {
    pub container: String,
    pub change: ContainerChange,
    pub project: Option<Uuid>,
    pub deployment: Option<Uuid>,
    /// Seconds since the epoch, as Docker stamped it (to resume after a reconnect).
    pub time: i64,
}

impl Engine {
    /// Follows `start` and `die` events of this installation's containers from `since`
    /// (seconds since the epoch). The stream ends when the connection to Docker does.
    pub async fn container_events(
        &self,
        since: Option<i64>,
    ) -> Result<impl Stream<Item = Result<ContainerEvent, EngineError>> + use<>, EngineError> {
        let docker = self.client().await?.clone();
        let mut filters = self.owned_filter(None);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert("event".into(), vec!["start".into(), "die".into()]);
        let options = bollard::query_parameters::EventsOptions {
            since: since.map(|s| s.to_string()),
            until: None,
            filters: Some(filters),
        };
        Ok(docker.events(Some(options)).filter_map(|event| async move {
            let event = match event {
                Ok(event) => event,
                Err(e) => return Some(Err(EngineError::from(e))),
            };
            let change = match event.action.as_deref() {
                Some("start") => ContainerChange::Started,
                Some("die") => ContainerChange::Died,
                _ => return None,
            };
            let actor = event.actor?;
            let attributes = actor.attributes.unwrap_or_default();
            let label = |name: &str| attributes.get(name).and_then(|v| v.parse().ok());
            Some(Ok(ContainerEvent {
                container: actor.id?,
                change,
                project: label(LABEL_PROJECT),
                deployment: label(LABEL_DEPLOYMENT),
                time: event.time.unwrap_or_default(),
            }))
        }))
    }
}

impl Engine {
    /// Follows what moves a swarm's replicas that this engine hears of: this installation's
    /// containers on this machine starting or dying (replicas included) and node changes (a
    /// node down or back, its availability or labels). Each item only says "something
    /// changed"; the reader re-reads the tasks. Ends when the connection to Docker does.
    pub async fn swarm_changes(
        &self,
    ) -> Result<impl Stream<Item = Result<(), EngineError>> + use<>, EngineError> {
        let docker = self.client().await?.clone();
        let mut containers = self.owned_filter(None);
        containers.insert("type".into(), vec!["container".into()]);
        containers.insert("event".into(), vec!["start".into(), "die".into()]);
        let nodes =
            std::collections::HashMap::from([("type".to_string(), vec!["node".to_string()])]);
        let follow = |filters| {
            docker.events(Some(bollard::query_parameters::EventsOptions {
                since: None,
                until: None,
                filters: Some(filters),
            }))
        };
        let merged = futures_util::stream::select(follow(containers), follow(nodes));
        Ok(merged.map(|event| event.map(drop).map_err(EngineError::from)))
    }
}
