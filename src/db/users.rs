//! Users: creation, lookup and the count that decides whether first-run setup is open.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::entities::sessions;
use super::entities::users::{self, Entity as Users};
use super::{Db, new_id, now};
use sea_orm::sea_query::{Expr, ExprTrait, Query};

pub use users::Model as User;

use crate::model::UserRole;

pub async fn count(db: &Db) -> Result<u64, DbErr> {
    Users::find().count(db).await
}

pub async fn create(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: UserRole,
) -> Result<User, DbErr> {
    let txn = db.begin().await?;
    let user = insert(&txn, username, password_hash, role).await?;
    txn.commit().await?;
    Ok(user)
}

/// Creates the first user (an admin) unless a user exists already (`None` then). Safe against
/// several instances on one Postgres: the check and the insert take turns under a
/// transaction-scoped advisory lock. (SQLite has one instance, which serialises setup itself.)
pub async fn create_first(
    db: &Db,
    username: &str,
    password_hash: &str,
) -> Result<Option<User>, DbErr> {
    use sea_orm::ConnectionTrait;
    let txn = db.begin().await?;
    if super::is_postgres(db) {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({SETUP_LOCK})"))
            .await?;
    }
    if Users::find().count(&txn).await? > 0 {
        return Ok(None);
    }
    let user = insert(&txn, username, password_hash, UserRole::Admin).await?;
    txn.commit().await?;
    Ok(Some(user))
}

/// The advisory lock key first-run setup takes on Postgres ("setup" in ASCII).
pub const SETUP_LOCK: i64 = 0x73_6574_7570;

/// A user and their personal team, inside the caller's transaction.
async fn insert<C: sea_orm::ConnectionTrait>(
    txn: &C,
    username: &str,
    password_hash: &str,
    role: UserRole,
) -> Result<User, DbErr> {
    let at = now();
    let user = users::ActiveModel {
        id: Set(new_id()),
        username: Set(username.to_string()),
        password_hash: Set(password_hash.to_string()),
        role: Set(role),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(txn)
    .await?;
    super::teams::create_personal(txn, user.id, username).await?;
    Ok(user)
}

/// The user behind an access token, if its login (session family) is still active — it has an
/// unexpired token and none of its tokens was ever revoked (revocation is final: a token a
/// racing refresh adds to a revoked family is dead too). One query on every request made with
/// an access token.
pub async fn find_with_active_login(
    db: &Db,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<Option<User>, DbErr> {
    let active = Query::select()
        .expr(Expr::val(1))
        .from(sessions::Entity)
        .and_where(Expr::col((sessions::Entity, sessions::Column::FamilyId)).eq(family_id))
        .and_where(
            Expr::col((sessions::Entity, sessions::Column::UserId))
                .equals((Users, users::Column::Id)),
        )
        .and_where(Expr::col((sessions::Entity, sessions::Column::RevokedAt)).is_null())
        .and_where(Expr::col((sessions::Entity, sessions::Column::ExpiresAt)).gt(now()))
        .to_owned();
    Users::find_by_id(user_id)
        .filter(Expr::exists(active))
        .filter(Expr::exists(super::sessions::revoked_in_family(family_id)).not())
        .one(db)
        .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<User>, DbErr> {
    Users::find_by_id(id).one(db).await
}

pub async fn find_by_username(db: &Db, username: &str) -> Result<Option<User>, DbErr> {
    Users::find()
        .filter(users::Column::Username.eq(username))
        .one(db)
        .await
}

pub async fn list(db: &Db) -> Result<Vec<User>, DbErr> {
    use sea_orm::QueryOrder;
    Users::find()
        .order_by_asc(users::Column::CreatedAt)
        .all(db)
        .await
}

/// Replaces a user's password hash.
pub async fn set_password(db: &Db, id: Uuid, password_hash: &str) -> Result<(), DbErr> {
    Users::update_many()
        .col_expr(users::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(users::Column::UpdatedAt, Expr::value(now()))
        .filter(users::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_role(db: &Db, id: Uuid, role: UserRole) -> Result<(), DbErr> {
    Users::update_many()
        .col_expr(users::Column::Role, Expr::value(role))
        .col_expr(users::Column::UpdatedAt, Expr::value(now()))
        .filter(users::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn count_admins(db: &Db) -> Result<u64, DbErr> {
    Users::find()
        .filter(users::Column::Role.eq(UserRole::Admin))
        .count(db)
        .await
}

/// Deletes a user; their sessions, API tokens and memberships go with them (foreign keys
/// cascade), and so does their personal team (the caller made sure it holds no project).
pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    Users::delete_by_id(id).exec(&txn).await?;
    super::entities::teams::Entity::delete_many()
        .filter(super::entities::teams::Column::PersonalOf.eq(id))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// Usernames of these users, for showing who triggered what.
pub async fn usernames(
    db: &Db,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<std::collections::HashMap<Uuid, String>, DbErr> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(Users::find()
        .filter(users::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}
