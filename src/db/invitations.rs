//! Team invitations: single-use, expiring, bound to one username, stored as a token hash.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::invitations::{self, Entity as Invitations};
use super::{Db, new_id, now};

pub use invitations::Model as Invitation;

pub struct New<'a> {
    pub team_id: Uuid,
    pub token_hash: &'a str,
    pub username: &'a str,
    pub role: crate::model::Role,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
}

pub async fn create(db: &Db, new: New<'_>) -> Result<Invitation, DbErr> {
    invitations::ActiveModel {
        id: Set(new_id()),
        team_id: Set(new.team_id),
        token_hash: Set(new.token_hash.to_string()),
        username: Set(new.username.to_string()),
        role: Set(new.role),
        invited_by: Set(Some(new.invited_by)),
        created_at: Set(now()),
        expires_at: Set(new.expires_at),
        accepted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find_by_hash(db: &Db, token_hash: &str) -> Result<Option<Invitation>, DbErr> {
    Invitations::find()
        .filter(invitations::Column::TokenHash.eq(token_hash))
        .one(db)
        .await
}

/// A team's invitations not yet accepted (expired ones included, so they can be seen and
/// withdrawn), newest first.
pub async fn pending(db: &Db, team: Uuid) -> Result<Vec<Invitation>, DbErr> {
    Invitations::find()
        .filter(invitations::Column::TeamId.eq(team))
        .filter(invitations::Column::AcceptedAt.is_null())
        .order_by_desc(invitations::Column::CreatedAt)
        .all(db)
        .await
}

pub async fn delete(db: &Db, team: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let result = Invitations::delete_many()
        .filter(invitations::Column::Id.eq(id))
        .filter(invitations::Column::TeamId.eq(team))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Uses the invitation and makes `user` a member, in one transaction: the claim is a
/// conditional update, so of two racing accepts exactly one wins. False when it was already
/// used or has expired. A user already in the team gets the invitation's role.
pub async fn accept(db: &Db, invitation: &Invitation, user: Uuid) -> Result<bool, DbErr> {
    use sea_orm::sea_query::Expr;
    let txn = db.begin().await?;
    let at = now();
    let claimed = Invitations::update_many()
        .col_expr(invitations::Column::AcceptedAt, Expr::val(at))
        .filter(invitations::Column::Id.eq(invitation.id))
        .filter(invitations::Column::AcceptedAt.is_null())
        .filter(invitations::Column::ExpiresAt.gt(at))
        .exec(&txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(false);
    }
    let existing = super::entities::team_members::Entity::find_by_id((invitation.team_id, user))
        .one(&txn)
        .await?;
    match existing {
        Some(member) if member.role == crate::model::Role::Owner => {}
        Some(_) => {
            super::entities::team_members::Entity::update_many()
                .col_expr(
                    super::entities::team_members::Column::Role,
                    Expr::val(invitation.role),
                )
                .filter(super::entities::team_members::Column::TeamId.eq(invitation.team_id))
                .filter(super::entities::team_members::Column::UserId.eq(user))
                .exec(&txn)
                .await?;
        }
        None => super::teams::add_member(&txn, invitation.team_id, user, invitation.role).await?,
    }
    txn.commit().await?;
    Ok(true)
}

/// Removes invitations that expired or were used before `before` (retention).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = Invitations::delete_many()
        .filter(invitations::Column::ExpiresAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
