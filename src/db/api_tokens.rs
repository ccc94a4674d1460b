//! API tokens for scripts and the CLI: named, scoped, optionally limited to projects and
//! expiring; stored as SHA-256 hashes, with the time of last use.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::entities::api_tokens::{self, Column, Entity as ApiTokens};
use super::{Db, new_id, now};

pub use api_tokens::Model as ApiToken;

/// How often the time of last use is written at most, per token (a busy script must not turn
/// every request into a write).
const TOUCH_EVERY: Duration = Duration::seconds(60);

pub struct New<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub prefix: &'a str,
    pub scope: crate::model::Scope,
    pub project_ids: Option<Vec<Uuid>>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn create(db: &Db, new: New<'_>) -> Result<ApiToken, DbErr> {
    api_tokens::ActiveModel {
        id: Set(new_id()),
        user_id: Set(new.user_id),
        name: Set(new.name.to_string()),
        token_hash: Set(new.token_hash.to_string()),
        prefix: Set(new.prefix.to_string()),
        created_at: Set(now()),
        last_used_at: Set(None),
        expires_at: Set(new.expires_at),
        scope: Set(new.scope),
        project_ids: Set(new
            .project_ids
            .map(|ids| serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))),
    }
    .insert(db)
    .await
}

/// The projects a token is limited to (`None`: not limited).
pub fn project_ids(token: &ApiToken) -> Option<Vec<Uuid>> {
    token
        .project_ids
        .as_deref()
        // A list that cannot be read limits to nothing rather than to everything.
        .map(|raw| serde_json::from_str(raw).unwrap_or_default())
}

/// The unexpired token with this hash.
pub async fn find_valid(db: &Db, token_hash: &str) -> Result<Option<ApiToken>, DbErr> {
    ApiTokens::find()
        .filter(Column::TokenHash.eq(token_hash))
        .filter(
            Condition::any()
                .add(Column::ExpiresAt.is_null())
                .add(Column::ExpiresAt.gt(now())),
        )
        .one(db)
        .await
}

/// Records that the token was used, at most once a minute.
pub async fn touch(db: &Db, token: &ApiToken) -> Result<(), DbErr> {
    let at = now();
    if token
        .last_used_at
        .is_some_and(|last| at - last < TOUCH_EVERY)
    {
        return Ok(());
    }
    ApiTokens::update_many()
        .col_expr(Column::LastUsedAt, Expr::val(at))
        .filter(Column::Id.eq(token.id))
        .exec(db)
        .await?;
    Ok(())
}

/// One user's tokens, or everyone's (`None`, for instance admins), oldest first.
pub async fn list(db: &Db, user_id: Option<Uuid>) -> Result<Vec<ApiToken>, DbErr> {
    let mut query = ApiTokens::find();
    if let Some(user) = user_id {
        query = query.filter(Column::UserId.eq(user));
    }
    query.order_by_asc(Column::CreatedAt).all(db).await
}

pub async fn count_for(db: &Db, user_id: Uuid) -> Result<u64, DbErr> {
    ApiTokens::find()
        .filter(Column::UserId.eq(user_id))
        .count(db)
        .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<ApiToken>, DbErr> {
    ApiTokens::find_by_id(id).one(db).await
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    ApiTokens::delete_by_id(id).exec(db).await?;
    Ok(())
}
