//! Pending command-line sign-ins (see `auth::device`). Every change is one conditional
//! statement, so two instances racing on the same sign-in cannot both settle or collect it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
};

use super::entities::cli_logins::{self, Column, Entity as CliLogins};
use super::{Db, now};

pub use cli_logins::Model as CliLogin;

/// Removes the expired ones, then counts those still pending.
pub async fn pending(db: &Db) -> Result<u64, DbErr> {
    CliLogins::delete_many()
        .filter(Column::ExpiresAt.lte(now()))
        .exec(db)
        .await?;
    CliLogins::find().count(db).await
}

/// Opens a sign-in; a code already in use is a unique violation (the caller draws another).
pub async fn insert(
    db: &Db,
    code: &str,
    poll_hash: &str,
    name: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    cli_logins::ActiveModel {
        code: Set(code.to_string()),
        poll_hash: Set(poll_hash.to_string()),
        name: Set(name.to_string()),
        stage: Set(crate::model::CliLoginState::Waiting),
        token_sealed: Set(None),
        username: Set(None),
        expires_at: Set(expires_at),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The sign-in with this code, still waiting and not expired.
pub async fn waiting(db: &Db, code: &str) -> Result<Option<CliLogin>, DbErr> {
    CliLogins::find_by_id(code.to_string())
        .filter(Column::Stage.eq(crate::model::CliLoginState::Waiting))
        .filter(Column::ExpiresAt.gt(now()))
        .one(db)
        .await
}

/// Moves a waiting sign-in to `stage` (with the sealed token when approved); false when it
/// was not waiting any more or has expired.
pub async fn settle(
    db: &Db,
    code: &str,
    stage: crate::model::CliLoginState,
    token_sealed: Option<Vec<u8>>,
    username: Option<String>,
) -> Result<bool, DbErr> {
    let result = CliLogins::update_many()
        .col_expr(Column::Stage, Expr::value(stage))
        .col_expr(Column::TokenSealed, Expr::value(token_sealed))
        .col_expr(Column::Username, Expr::value(username))
        .filter(Column::Code.eq(code))
        .filter(Column::Stage.eq(crate::model::CliLoginState::Waiting))
        .filter(Column::ExpiresAt.gt(now()))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// The sign-in this poll token opened, if it has not expired.
pub async fn by_poll_hash(db: &Db, poll_hash: &str) -> Result<Option<CliLogin>, DbErr> {
    CliLogins::find()
        .filter(Column::PollHash.eq(poll_hash))
        .filter(Column::ExpiresAt.gt(now()))
        .one(db)
        .await
}

/// Removes a settled sign-in as it is reported; false when another poll already did.
pub async fn collect(db: &Db, code: &str) -> Result<bool, DbErr> {
    let result = CliLogins::delete_many()
        .filter(Column::Code.eq(code))
        .filter(Column::Stage.ne(crate::model::CliLoginState::Waiting))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
