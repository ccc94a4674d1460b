//! Users: creation, lookup and the count that decides whether first-run setup is open.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use uuid::Uuid;

use super::entities::users::{self, Entity as Users};
use super::{Db, new_id, now};

pub use users::Model as User;

pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_MEMBER: &str = "member";

pub async fn count(db: &Db) -> Result<u64, DbErr> {
    Users::find().count(db).await
}

pub async fn create(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: &str,
) -> Result<User, DbErr> {
    let at = now();
    users::ActiveModel {
        id: Set(new_id()),
        username: Set(username.to_string()),
        password_hash: Set(password_hash.to_string()),
        role: Set(role.to_string()),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
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
