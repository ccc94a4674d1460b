//! Refresh-token sessions. Each row is one refresh token; the tokens of one login share a
//! family. Rotation marks the old row; presenting a rotated token revokes the family.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::entities::sessions::{self, Entity as Sessions};
use super::{Db, new_id, now};

pub use sessions::Model as Session;

pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: &'a str,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

pub async fn insert(db: &Db, new: NewSession<'_>) -> Result<Session, DbErr> {
    sessions::ActiveModel {
        id: Set(new_id()),
        user_id: Set(new.user_id),
        family_id: Set(new.family_id),
        token_hash: Set(new.token_hash.to_string()),
        created_at: Set(now()),
        expires_at: Set(new.expires_at),
        rotated_at: Set(None),
        revoked_at: Set(None),
        user_agent: Set(new.user_agent),
        ip: Set(new.ip),
    }
    .insert(db)
    .await
}

pub async fn find_by_hash(db: &Db, token_hash: &str) -> Result<Option<Session>, DbErr> {
    Sessions::find()
        .filter(sessions::Column::TokenHash.eq(token_hash))
        .one(db)
        .await
}

/// Marks a token used. Returns false if another request rotated or revoked it first.
pub async fn mark_rotated(db: &Db, id: Uuid) -> Result<bool, DbErr> {
    let result = Sessions::update_many()
        .col_expr(sessions::Column::RotatedAt, Expr::value(now()))
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RotatedAt.is_null())
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn revoke_family(db: &Db, family_id: Uuid) -> Result<(), DbErr> {
    Sessions::update_many()
        .col_expr(sessions::Column::RevokedAt, Expr::value(now()))
        .filter(sessions::Column::FamilyId.eq(family_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// A subquery that finds a revoked token in `family_id`: a login is over for good once any of
/// its tokens is revoked.
pub fn revoked_in_family(family_id: Uuid) -> sea_orm::sea_query::SelectStatement {
    use sea_orm::sea_query::{ExprTrait, Query};
    Query::select()
        .expr(Expr::val(1))
        .from_as(Sessions, "revoked")
        .and_where(Expr::col(("revoked", sessions::Column::FamilyId)).eq(family_id))
        .and_where(Expr::col(("revoked", sessions::Column::RevokedAt)).is_not_null())
        .to_owned()
}

/// True when any token of the login was revoked (logout or detected reuse).
pub async fn family_revoked(db: &Db, family_id: Uuid) -> Result<bool, DbErr> {
    Ok(Sessions::find()
        .filter(sessions::Column::FamilyId.eq(family_id))
        .filter(sessions::Column::RevokedAt.is_not_null())
        .one(db)
        .await?
        .is_some())
}

/// Deletes tokens that expired, and whole logins revoked before `keep_until` (every token of
/// the family goes at once, so a family never loses its revocation mark while a token of it
/// remains).
pub async fn prune(db: &Db, keep_until: DateTime<Utc>) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Query;
    let revoked_families = Query::select()
        .column(sessions::Column::FamilyId)
        .from(Sessions)
        .and_where(sessions::Column::RevokedAt.lt(keep_until))
        .to_owned();
    let result = Sessions::delete_many()
        .filter(
            Condition::any()
                .add(sessions::Column::ExpiresAt.lt(now()))
                .add(sessions::Column::FamilyId.in_subquery(revoked_families)),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// The user's logins (session families) that are not revoked.
pub async fn active_families(db: &Db, user_id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let rows = Sessions::find()
        .filter(sessions::Column::UserId.eq(user_id))
        .filter(sessions::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    let mut families: Vec<Uuid> = rows.into_iter().map(|s| s.family_id).collect();
    families.sort_unstable();
    families.dedup();
    Ok(families)
}
