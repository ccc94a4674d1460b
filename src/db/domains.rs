//! Custom domains of projects: added `pending` with a verification token, `verified` once DNS
//! points at shard, with the certificate's state beside. A domain belongs to one project.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, SqlErr,
};
use uuid::Uuid;

use super::Db;
use super::entities::domains::{self, Column, Entity as Domains};

pub use domains::Model as Domain;

/// Why a domain could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("the domain is already in use")]
    Taken,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Removes domains left unverified since before `before` (all of them, or only `name`): a
/// claim nobody proves expires, so no one can hold another's domain by adding it first.
/// Answers how many went.
pub async fn expire_pending(
    db: &Db,
    before: chrono::DateTime<Utc>,
    name: Option<&str>,
) -> Result<u64, DbErr> {
    let mut query = Domains::delete_many()
        .filter(Column::Status.ne(crate::model::DomainState::Verified))
        .filter(Column::VerifiedAt.is_null())
        .filter(Column::CreatedAt.lt(before));
    if let Some(name) = name {
        query = query.filter(Column::Domain.eq(name));
    }
    Ok(query.exec(db).await?.rows_affected)
}

pub async fn add(db: &Db, project_id: Uuid, domain: &str, token: &str) -> Result<Domain, AddError> {
    let row = domains::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project_id),
        domain: Set(domain.to_string()),
        verification_token: Set(token.to_string()),
        verified_at: Set(None),
        cert_status: Set(crate::model::CertState::Absent),
        cert_expires_at: Set(None),
        created_at: Set(Utc::now()),
        status: Set(crate::model::DomainState::Pending),
        message: Set(None),
        checked_at: Set(None),
        cert_message: Set(None),
    };
    match row.insert(db).await {
        Ok(domain) => Ok(domain),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Err(AddError::Taken)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find(db: &Db, domain: &str) -> Result<Option<Domain>, DbErr> {
    Domains::find()
        .filter(Column::Domain.eq(domain))
        .one(db)
        .await
}

pub async fn list_for_project(db: &Db, project_id: Uuid) -> Result<Vec<Domain>, DbErr> {
    Domains::find()
        .filter(Column::ProjectId.eq(project_id))
        .order_by_asc(Column::Domain)
        .all(db)
        .await
}

/// Every verified domain, grouped by project (for the route table).
pub async fn verified_by_project(db: &Db) -> Result<HashMap<Uuid, Vec<String>>, DbErr> {
    let rows = Domains::find()
        .filter(Column::Status.eq(crate::model::DomainState::Verified))
        .all(db)
        .await?;
    let mut out: HashMap<Uuid, Vec<String>> = HashMap::new();
    for row in rows {
        out.entry(row.project_id).or_default().push(row.domain);
    }
    Ok(out)
}

/// Every verified domain (for certificates).
pub async fn verified(db: &Db) -> Result<Vec<Domain>, DbErr> {
    Domains::find()
        .filter(Column::Status.eq(crate::model::DomainState::Verified))
        .order_by_asc(Column::Domain)
        .all(db)
        .await
}

/// Records a verification attempt: `verified`, or still `pending`/`failed` with what DNS said.
pub async fn record_check(
    db: &Db,
    domain: Domain,
    status: crate::model::DomainState,
    message: Option<String>,
) -> Result<Domain, DbErr> {
    let now = Utc::now();
    let verified_at = if status == crate::model::DomainState::Verified {
        domain.verified_at.or(Some(now))
    } else {
        None
    };
    let mut row = domain.into_active_model();
    row.status = Set(status);
    row.message = Set(message);
    row.checked_at = Set(Some(now));
    row.verified_at = Set(verified_at);
    row.update(db).await
}

/// Records the certificate's state (`none`, `pending`, `issued`, `failed`, `file`).
pub async fn record_certificate(
    db: &Db,
    domain: &str,
    status: crate::model::CertState,
    expires_at: Option<chrono::DateTime<Utc>>,
    message: Option<String>,
) -> Result<(), DbErr> {
    let Some(row) = find(db, domain).await? else {
        return Ok(());
    };
    let mut row = row.into_active_model();
    row.cert_status = Set(status);
    if expires_at.is_some() {
        row.cert_expires_at = Set(expires_at);
    }
    row.cert_message = Set(message);
    row.update(db).await.map(|_| ())
}

pub async fn delete(db: &Db, project_id: Uuid, domain: &str) -> Result<bool, DbErr> {
    let result = Domains::delete_many()
        .filter(Column::ProjectId.eq(project_id))
        .filter(Column::Domain.eq(domain))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
