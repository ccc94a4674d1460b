//! A project's environment variables. Values arrive and leave sealed; this module never sees
//! a clear value.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use super::Db;
use super::entities::env_vars::{self, Entity as EnvVars};

pub use env_vars::Model as EnvVar;

/// Any one stored variable (to check that the secret key still opens them).
pub async fn any(db: &Db) -> Result<Option<EnvVar>, DbErr> {
    EnvVars::find().one(db).await
}

pub async fn list(db: &Db, project_id: Uuid) -> Result<Vec<EnvVar>, DbErr> {
    EnvVars::find()
        .filter(env_vars::Column::ProjectId.eq(project_id))
        .order_by_asc(env_vars::Column::Key)
        .all(db)
        .await
}

/// Replaces the whole set in one transaction: readers see the old set or the new one.
pub async fn replace(db: &Db, project_id: Uuid, vars: Vec<EnvVar>) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    EnvVars::delete_many()
        .filter(env_vars::Column::ProjectId.eq(project_id))
        .exec(&tx)
        .await?;
    for var in vars {
        env_vars::ActiveModel::from(var).insert(&tx).await?;
    }
    tx.commit().await
}

/// Deletes one variable.
pub async fn remove(db: &Db, id: Uuid) -> Result<(), DbErr> {
    EnvVars::delete_by_id(id).exec(db).await?;
    Ok(())
}
