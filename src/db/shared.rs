//! Values shared by every instance on one database, sealed with the installation's key (the
//! row key as associated data, so a value cannot be moved to another key): certificates,
//! the ACME account, pending HTTP-01 answers, registry credentials, the Docker engines
//! instances drive. A value may expire; expired ones read as absent and are deleted at the
//! next write.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entities::shared_values::{self, Column, Entity as SharedValues};
use super::{Db, now};
use crate::secrets::Sealer;

/// Writes (or replaces) `key`; returns the time it recorded as the change.
pub async fn put(
    db: &Db,
    sealer: &Sealer,
    key: &str,
    value: &[u8],
    expires_at: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, DbErr> {
    let written = now();
    SharedValues::delete_many()
        .filter(Column::ExpiresAt.lte(now()))
        .exec(db)
        .await?;
    let row = shared_values::ActiveModel {
        key: Set(key.to_string()),
        value_sealed: Set(sealer.seal(value, key.as_bytes())),
        updated_at: Set(written),
        expires_at: Set(expires_at),
    };
    SharedValues::insert(row)
        .on_conflict(
            OnConflict::column(Column::Key)
                .update_columns([Column::ValueSealed, Column::UpdatedAt, Column::ExpiresAt])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(written)
}

/// The value of `key`, unless absent, expired or not sealed with this installation's key.
pub async fn get(db: &Db, sealer: &Sealer, key: &str) -> Result<Option<Vec<u8>>, DbErr> {
    let Some(row) = SharedValues::find_by_id(key.to_string()).one(db).await? else {
        return Ok(None);
    };
    if row.expires_at.is_some_and(|at| at <= now()) {
        return Ok(None);
    }
    Ok(open(sealer, &row))
}

pub async fn delete(db: &Db, key: &str) -> Result<(), DbErr> {
    SharedValues::delete_by_id(key.to_string()).exec(db).await?;
    Ok(())
}

/// The keys under `prefix` with when each was last written (values are not read or opened,
/// so a poll of what changed stays cheap).
pub async fn versions(db: &Db, prefix: &str) -> Result<Vec<(String, DateTime<Utc>)>, DbErr> {
    SharedValues::find()
        .select_only()
        .column(Column::Key)
        .column(Column::UpdatedAt)
        .filter(Column::Key.starts_with(prefix))
        .into_tuple()
        .all(db)
        .await
}

fn open(sealer: &Sealer, row: &shared_values::Model) -> Option<Vec<u8>> {
    match sealer.open(&row.value_sealed, row.key.as_bytes()) {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::warn!(key = %row.key, "a shared value does not open with this secret key");
            None
        }
    }
}
