//! Personal API tokens for scripts and the CLI, stored as SHA-256 hashes.

use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::entities::api_tokens::{self, Column, Entity as ApiTokens};
use super::{Db, new_id, now};

pub use api_tokens::Model as ApiToken;

pub async fn create(
    db: &Db,
    user_id: Uuid,
    name: &str,
    token_hash: &str,
    prefix: &str,
) -> Result<ApiToken, DbErr> {
    api_tokens::ActiveModel {
        id: Set(new_id()),
        user_id: Set(user_id),
        name: Set(name.to_string()),
        token_hash: Set(token_hash.to_string()),
        prefix: Set(prefix.to_string()),
        created_at: Set(now()),
        last_used_at: Set(None),
        expires_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn list(db: &Db, user_id: Uuid) -> Result<Vec<ApiToken>, DbErr> {
    ApiTokens::find()
        .filter(Column::UserId.eq(user_id))
        .order_by_asc(Column::CreatedAt)
        .all(db)
        .await
}

/// Deletes the caller's token; false if it has no such token.
pub async fn delete(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let result = ApiTokens::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
