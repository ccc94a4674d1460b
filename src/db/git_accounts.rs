//! Linked GitHub accounts: one per GitHub user, each tied to one shard user. The access token
//! is sealed (AES-GCM, the row id as associated data) and never leaves the server in clear.

use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::entities::git_accounts::{self, Column, Entity as GitAccounts};
use super::{Db, new_id, now};

pub use git_accounts::Model as GitAccount;

pub const GITHUB: &str = "github";

pub async fn find_by_github_id(db: &Db, github_id: &str) -> Result<Option<GitAccount>, DbErr> {
    GitAccounts::find()
        .filter(Column::Provider.eq(GITHUB))
        .filter(Column::ProviderUserId.eq(github_id))
        .one(db)
        .await
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<GitAccount>, DbErr> {
    GitAccounts::find_by_id(id).one(db).await
}

pub async fn for_user(db: &Db, user_id: Uuid) -> Result<Option<GitAccount>, DbErr> {
    GitAccounts::find()
        .filter(Column::Provider.eq(GITHUB))
        .filter(Column::UserId.eq(user_id))
        .one(db)
        .await
}

/// A new row id, so the token can be sealed with it before the insert.
pub fn next_id() -> Uuid {
    new_id()
}

pub struct Link<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub github_id: &'a str,
    pub login: &'a str,
    pub token_sealed: Vec<u8>,
    pub scopes: &'a str,
}

pub async fn insert(db: &Db, link: Link<'_>) -> Result<GitAccount, DbErr> {
    let at = now();
    git_accounts::ActiveModel {
        id: Set(link.id),
        user_id: Set(link.user_id),
        provider: Set(GITHUB.into()),
        provider_user_id: Set(link.github_id.to_string()),
        login: Set(link.login.chars().take(100).collect()),
        access_token_sealed: Set(link.token_sealed),
        refresh_token_sealed: Set(None),
        scopes: Set(link.scopes.chars().take(256).collect()),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await
}

/// A new token for an existing link (sealed with the row's own id).
pub async fn update_token(
    db: &Db,
    id: Uuid,
    login: &str,
    token_sealed: Vec<u8>,
    scopes: &str,
) -> Result<(), DbErr> {
    git_accounts::ActiveModel {
        id: Set(id),
        login: Set(login.chars().take(100).collect()),
        access_token_sealed: Set(token_sealed),
        scopes: Set(scopes.chars().take(256).collect()),
        updated_at: Set(now()),
        ..Default::default()
    }
    .update(db)
    .await?;
    Ok(())
}

pub async fn delete(db: &Db, id: Uuid) -> Result<(), DbErr> {
    GitAccounts::delete_by_id(id).exec(db).await?;
    Ok(())
}
