//! Notification channels and their deliveries. A channel belongs to a user, for all of their
//! projects or one; its destination and signing secret are sealed (the caller seals with the
//! channel's id as associated data). A delivery is one event sent through one channel, with
//! its attempts; the newest ones per channel are kept (`MAX_DELIVERIES`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entities::notification_channels::{self, Column, Entity as Channels};
use super::entities::notification_deliveries::{self, Column as DColumn, Entity as Deliveries};
use super::{Db, new_id, now};

pub use notification_channels::Model as Channel;
pub use notification_deliveries::Model as Delivery;

/// Channels one user may have.
pub const MAX_CHANNELS: usize = 50;
/// Deliveries kept per channel (older ones are removed as new ones are made).
pub const MAX_DELIVERIES: u64 = 200;

pub struct NewChannel {
    pub id: Uuid,
    pub user_id: Uuid,
    pub project_id: Option<Uuid>,
    pub kind: crate::model::ChannelKind,
    pub target_sealed: Vec<u8>,
    pub target_hint: String,
    pub secret_sealed: Option<Vec<u8>>,
    pub events: String,
}

pub fn next_id() -> Uuid {
    new_id()
}

pub async fn insert(db: &Db, c: NewChannel) -> Result<Channel, DbErr> {
    notification_channels::ActiveModel {
        id: Set(c.id),
        user_id: Set(c.user_id),
        project_id: Set(c.project_id),
        kind: Set(c.kind),
        target_sealed: Set(c.target_sealed),
        target_hint: Set(c.target_hint),
        secret_sealed: Set(c.secret_sealed),
        events: Set(c.events),
        created_at: Set(now()),
    }
    .insert(db)
    .await
}

pub async fn for_user(db: &Db, user: Uuid) -> Result<Vec<Channel>, DbErr> {
    Channels::find()
        .filter(Column::UserId.eq(user))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

/// A channel of `user` (another user's is `None`, like a missing one).
pub async fn find(db: &Db, id: Uuid) -> Result<Option<Channel>, DbErr> {
    Channels::find_by_id(id).one(db).await
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    Channels::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// The channels an event of `project` (owned by `owner`) goes to: the owner's channels for
/// all projects or for this one, that listen to `event`.
pub async fn listening(
    db: &Db,
    owner: Uuid,
    project: Option<Uuid>,
    event: &str,
) -> Result<Vec<Channel>, DbErr> {
    let mut scope = Condition::any().add(Column::ProjectId.is_null());
    if let Some(project) = project {
        scope = scope.add(Column::ProjectId.eq(project));
    }
    let channels = Channels::find()
        .filter(Column::UserId.eq(owner))
        .filter(scope)
        .all(db)
        .await?;
    Ok(channels
        .into_iter()
        .filter(|c| c.events.is_empty() || c.events.split(',').any(|e| e == event))
        .collect())
}

pub async fn insert_delivery(
    db: &Db,
    channel: Uuid,
    event: &str,
    payload: String,
) -> Result<Delivery, DbErr> {
    let at = now();
    let delivery = notification_deliveries::ActiveModel {
        id: Set(new_id()),
        channel_id: Set(channel),
        event: Set(event.to_string()),
        payload: Set(payload),
        status: Set(crate::model::DeliveryState::Pending),
        attempts: Set(0),
        last_error: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?;
    // Keep the newest MAX_DELIVERIES of the channel.
    let keep: Vec<Uuid> = Deliveries::find()
        .select_only()
        .column(DColumn::Id)
        .filter(DColumn::ChannelId.eq(channel))
        .order_by_desc(DColumn::CreatedAt)
        .limit(MAX_DELIVERIES)
        .into_tuple()
        .all(db)
        .await?;
    if keep.len() as u64 == MAX_DELIVERIES {
        Deliveries::delete_many()
            .filter(DColumn::ChannelId.eq(channel))
            .filter(DColumn::Id.is_not_in(keep))
            .exec(db)
            .await?;
    }
    Ok(delivery)
}

pub async fn find_delivery(db: &Db, id: Uuid) -> Result<Option<Delivery>, DbErr> {
    Deliveries::find_by_id(id).one(db).await
}

/// Records one attempt: its outcome (`crate::model::DeliveryState::Delivered`, `crate::model::DeliveryState::Pending` for a retry to come, `crate::model::DeliveryState::Failed`)
/// and the error, if any.
pub async fn record_attempt(
    db: &Db,
    delivery: Delivery,
    status: crate::model::DeliveryState,
    error: Option<String>,
) -> Result<(), DbErr> {
    let attempts = delivery.attempts + 1;
    let mut active: notification_deliveries::ActiveModel = delivery.into();
    active.attempts = Set(attempts);
    active.status = Set(status);
    active.last_error = Set(error.map(|e| e.chars().take(500).collect()));
    active.updated_at = Set(now());
    active.update(db).await?;
    Ok(())
}

/// A channel's deliveries, newest first.
pub async fn deliveries(db: &Db, channel: Uuid, limit: u64) -> Result<Vec<Delivery>, DbErr> {
    Deliveries::find()
        .filter(DColumn::ChannelId.eq(channel))
        .order_by_desc(DColumn::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Deliveries made before `before` (retention).
pub async fn prune_deliveries(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Deliveries::delete_many()
        .filter(DColumn::CreatedAt.lt(before))
        .exec(db)
        .await?
        .rows_affected)
}
