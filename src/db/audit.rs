//! The audit log: who did what to which resource, from where.

use sea_orm::{ActiveModelTrait, DbErr, NotSet, Set};
use uuid::Uuid;

use super::entities::audit_log;
use super::{Db, now};

pub struct Entry<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
}

pub async fn record(db: &Db, entry: Entry<'_>) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        id: NotSet,
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.to_string()),
        target_type: Set(entry.target_type.to_string()),
        target_id: Set(entry.target_id),
        detail: Set(None),
        ip: Set(entry.ip),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Removes entries older than `before` (retention).
pub async fn prune(db: &Db, before: chrono::DateTime<chrono::Utc>) -> Result<u64, DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let result = audit_log::Entity::delete_many()
        .filter(audit_log::Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
