//! GitHub webhook deliveries (one row per verified delivery id, so a redelivery is recognised)
//! and each project's sealed webhook secret.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::entities::projects::{self, Entity as Projects};
use super::entities::webhook_deliveries::{self, Column, Entity as Deliveries};
use super::{Db, new_id, now};

pub use webhook_deliveries::Model as Delivery;

/// Records a delivery as received. `Ok(None)` when this delivery id was recorded before (a
/// redelivery or a replay): the caller must not act on it again.
pub async fn receive(
    db: &Db,
    delivery_id: &str,
    project_id: Uuid,
    event: &str,
) -> Result<Option<Delivery>, DbErr> {
    let row = webhook_deliveries::ActiveModel {
        id: Set(new_id()),
        delivery_id: Set(delivery_id.to_string()),
        project_id: Set(Some(project_id)),
        event: Set(event.to_string()),
        outcome: Set(crate::model::WebhookOutcome::Received),
        created_at: Set(now()),
        detail: Set(None),
        deployment_id: Set(None),
    };
    match row.insert(db).await {
        Ok(row) => Ok(Some(row)),
        Err(e) if super::is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What shard did with a delivery: `deployed`, `ignored` or `pong`, in words in `detail`.
pub async fn settle(
    db: &Db,
    id: Uuid,
    outcome: crate::model::WebhookOutcome,
    detail: &str,
    deployment_id: Option<Uuid>,
) -> Result<(), DbErr> {
    let detail: String = detail.chars().take(500).collect();
    Deliveries::update_many()
        .col_expr(Column::Outcome, Expr::value(outcome))
        .col_expr(Column::Detail, Expr::value(detail))
        .col_expr(Column::DeploymentId, Expr::value(deployment_id))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The project's newest deliveries first.
pub async fn list(db: &Db, project_id: Uuid, limit: u64) -> Result<Vec<Delivery>, DbErr> {
    Deliveries::find()
        .filter(Column::ProjectId.eq(project_id))
        .order_by_desc(Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Removes deliveries older than `before` (retention).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Deliveries::delete_many()
        .filter(Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Stores a project's sealed webhook secret unless it has one already; returns the stored one
/// (so two first requests racing agree on one secret).
pub async fn ensure_secret(db: &Db, project_id: Uuid, sealed: Vec<u8>) -> Result<Vec<u8>, DbErr> {
    Projects::update_many()
        .col_expr(projects::Column::WebhookSecretSealed, Expr::value(sealed))
        .filter(projects::Column::Id.eq(project_id))
        .filter(projects::Column::WebhookSecretSealed.is_null())
        .exec(db)
        .await?;
    Projects::find_by_id(project_id)
        .one(db)
        .await?
        .and_then(|p| p.webhook_secret_sealed)
        .ok_or(DbErr::RecordNotFound("project".into()))
}

/// Replaces the project's webhook secret (a rotation).
pub async fn set_secret(db: &Db, project_id: Uuid, sealed: Vec<u8>) -> Result<(), DbErr> {
    Projects::update_many()
        .col_expr(projects::Column::WebhookSecretSealed, Expr::value(sealed))
        .filter(projects::Column::Id.eq(project_id))
        .exec(db)
        .await?;
    Ok(())
}
