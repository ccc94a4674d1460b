//! `/nodes`: the Docker Swarm nodes apps run on (`runtime.kind = "swarm"`). Anyone signed in
//! reads the list (placement labels are chosen from it); instance admins change a node's
//! labels and availability (`drain` moves its replicas elsewhere) and read the join command.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access;
use crate::cluster::nodes::{NodeChange, NodeInfo, NodesError};
use crate::config::RuntimeKind;
use crate::http::auth::Authenticated;
use crate::http::body::JsonBody;
use crate::http::error::{AppError, AppResult};
use crate::state::AppState;
use crate::validate;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/nodes", web::get().to(list_nodes))
        .route("/nodes/join", web::get().to(join))
        .route("/nodes/{id}", web::patch().to(update_node));
}

#[derive(Serialize, ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: NodeInfo,
    /// shard app replicas running on it.
    pub replicas: usize,
}

/// Why there are no nodes: shard's engine is not a swarm manager.
fn not_a_swarm(state: &AppState) -> AppError {
    let runtime = match state.config.runtime.kind {
        RuntimeKind::Docker => {
            "apps run as plain containers on this machine (runtime.kind = \"docker\")"
        }
        RuntimeKind::Swarm => "runtime.kind is \"swarm\"",
    };
    AppError::Conflict(format!(
        "shard's Docker engine is not a Swarm manager, so there are no nodes to list; {runtime}. Run `docker swarm init` on this machine to start one"
    ))
}

/// What a nodes error answers.
fn nodes_error(state: &AppState, e: NodesError) -> AppError {
    match e {
        NodesError::NotASwarm => not_a_swarm(state),
        NodesError::NotFound => AppError::not_found("node"),
        NodesError::Unavailable(why) => AppError::Unavailable(why),
    }
}

/// The swarm's nodes as shard's engine sees them, or why there are none.
async fn read_nodes(state: &AppState) -> AppResult<Vec<NodeView>> {
    let nodes = state
        .engines
        .nodes()
        .await
        .map_err(|e| nodes_error(state, e))?;
    Ok(nodes
        .into_iter()
        .map(|(node, replicas)| NodeView { node, replicas })
        .collect())
}

/// The swarm's nodes (409 when shard's engine is not a Swarm manager).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "nodes",
    responses((status = 200, body = [NodeView]), (status = 401), (status = 409, description = "not a swarm"), (status = 503)),
    security(("bearer" = [])))]
pub async fn list_nodes(
    state: web::Data<AppState>,
    Authenticated(_actor): Authenticated,
) -> AppResult<web::Json<Vec<NodeView>>> {
    Ok(web::Json(read_nodes(&state).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// Replaces the node's labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// `active`, `pause` (no new replicas) or `drain` (its replicas move away).
    pub availability: Option<String>,
}

/// Changes a node's labels or availability (instance admins).
#[utoipa::path(patch, path = "/api/v1/nodes/{id}", tag = "nodes", params(("id" = String, Path, description = "the Swarm node id")), request_body = UpdateNode,
    responses((status = 200, body = NodeView), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update_node(
    state: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(actor): Authenticated,
    path: web::Path<String>,
    body: JsonBody<UpdateNode>,
) -> AppResult<web::Json<NodeView>> {
    access::instance_admin(&actor)?;
    let body = body.parse()?;
    let id = path.into_inner();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AppError::not_found("node"));
    }
    if let Some(labels) = &body.labels {
        if labels.len() > 20 {
            return Err(AppError::validation("labels", "at most 20 labels"));
        }
        for (key, value) in labels {
            validate::node_label(key)
                .map_err(|why| AppError::validation("labels", format!("'{key}' {why}")))?;
            validate::node_label(value).map_err(|why| {
                AppError::validation("labels", format!("the value of '{key}' {why}"))
            })?;
        }
    }
    if let Some(a) = &body.availability
        && !matches!(a.as_str(), "active" | "pause" | "drain")
    {
        return Err(AppError::validation(
            "availability",
            "must be \"active\", \"pause\" or \"drain\"",
        ));
    }
    crate::http::audit::note(&req, |f| f.action = Some("node.update".into()));
    crate::http::audit::detail(
        &req,
        serde_json::json!({"node": id, "labels": body.labels, "availability": body.availability}),
    );
    let change = NodeChange {
        labels: body.labels,
        availability: body.availability,
    };
    state
        .engines
        .update_node(&id, change)
        .await
        .map_err(|e| nodes_error(&state, e))?;
    read_nodes(&state)
        .await?
        .into_iter()
        .find(|n| n.node.id == id)
        .map(web::Json)
        .ok_or_else(|| AppError::not_found("node"))
}

#[derive(Serialize, ToSchema)]
pub struct JoinView {
    /// `docker` or `swarm`.
    pub runtime: String,
    /// Whether shard's engine manages a swarm.
    pub swarm: bool,
    /// What to run on a new machine to add it as a node (`None` without a swarm).
    pub command: Option<String>,
    /// Where images travel between nodes (`registry.url`).
    pub registry: Option<String>,
    /// What a new node needs before it can run apps.
    pub steps: Vec<String>,
    /// What is wrong with how shard runs now (several instances on different Docker engines).
    pub warnings: Vec<String>,
}

/// How to add a node (instance admins): the `docker swarm join` command with the worker token.
#[utoipa::path(get, path = "/api/v1/nodes/join", tag = "nodes",
    responses((status = 200, body = JoinView), (status = 403)), security(("bearer" = [])))]
pub async fn join(
    state: web::Data<AppState>,
    Authenticated(actor): Authenticated,
) -> AppResult<web::Json<JoinView>> {
    access::instance_admin(&actor)?;
    let runtime = match state.config.runtime.kind {
        RuntimeKind::Docker => "docker",
        RuntimeKind::Swarm => "swarm",
    };
    let registry = state.config.registry.url.clone();
    let advertise = state.config.runtime.advertise_addr.as_deref();
    let crate::cluster::nodes::Join { managing, command } = state.engines.join(advertise).await;
    let mut steps = Vec::new();
    if state.config.runtime.kind == RuntimeKind::Docker {
        steps.push("set runtime.kind = \"swarm\" in shard's config and restart shard".into());
    }
    if !managing {
        steps.push("run `docker swarm init` on this machine".into());
    }
    match &registry {
        Some(url) => steps.push(format!(
            "make the new node's engine trust the registry: its CA in /etc/docker/certs.d/{url}/ca.crt"
        )),
        None => steps.push(
            "run a registry every node can reach and set registry.url (images travel through it)"
                .into(),
        ),
    }
    steps.push("on the new machine, run the join command below".into());
    steps.push("give it labels here to place projects on it".into());
    Ok(web::Json(JoinView {
        runtime: runtime.into(),
        swarm: managing,
        command,
        registry,
        steps,
        // Compared afresh for the admin who asks.
        warnings: state.engines.refresh().await.into_iter().collect(),
    }))
}
