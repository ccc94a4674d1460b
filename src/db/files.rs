//! File mounts, versioned: each upload or deletion is a row at the project's next version, and
//! the files at version N are the rows made at or before N that no change at or before N
//! replaced. Content arrives here sealed (the caller seals and opens it); deletions have none.
//! History is bounded: rows replaced more than `KEEP_VERSIONS` changes ago are dropped.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::Db;
use super::entities::project_files::{self, Column, Entity as Files};

pub use project_files::Model as FileRow;

/// Replaced versions kept for history (and for deployments that start from them).
pub const KEEP_VERSIONS: i32 = 20;

/// A change without its content.
#[derive(Debug, Clone, FromQueryResult)]
pub struct FileMeta {
    pub id: Uuid,
    pub path: String,
    pub version: i32,
    pub superseded_in: Option<i32>,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl FileMeta {
    /// Whether this is the current content of its path (not replaced, not a deletion).
    pub fn is_current(&self) -> bool {
        self.superseded_in.is_none() && self.sha256.is_some()
    }
}

/// Every change of `project` still kept, oldest first, without content.
pub async fn history(db: &Db, project: Uuid) -> Result<Vec<FileMeta>, DbErr> {
    Files::find()
        .select_only()
        .columns([
            Column::Id,
            Column::Path,
            Column::Version,
            Column::SupersededIn,
            Column::SizeBytes,
            Column::Sha256,
            Column::CreatedBy,
            Column::CreatedAt,
        ])
        .filter(Column::ProjectId.eq(project))
        .order_by_asc(Column::Version)
        .into_model::<FileMeta>()
        .all(db)
        .await
}

/// The project's current version: that of its latest change, 0 before the first.
pub fn version_of(history: &[FileMeta]) -> i32 {
    history.iter().map(|f| f.version).max().unwrap_or(0)
}

/// The files of `project` at its current version, with their (sealed) content, and that
/// version; read in one query so the two agree.
pub async fn current(db: &Db, project: Uuid) -> Result<(i32, Vec<FileRow>), DbErr> {
    let rows = Files::find()
        .filter(Column::ProjectId.eq(project))
        .order_by_asc(Column::Path)
        .all(db)
        .await?;
    let version = rows.iter().map(|r| r.version).max().unwrap_or(0);
    let files = rows
        .into_iter()
        .filter(|r| r.superseded_in.is_none() && r.content.is_some())
        .collect();
    Ok((version, files))
}

/// The current row of `path`, with its sealed content.
pub async fn find(db: &Db, project: Uuid, path: &str) -> Result<Option<FileRow>, DbErr> {
    Files::find()
        .filter(Column::ProjectId.eq(project))
        .filter(Column::Path.eq(path))
        .filter(Column::SupersededIn.is_null())
        .filter(Column::Content.is_not_null())
        .one(db)
        .await
}

/// A change to record: new content (sealed, with its plain size and digest) or a deletion.
pub struct Change {
    /// The row id the content was sealed for.
    pub id: Uuid,
    pub path: String,
    pub content: Option<(Vec<u8>, i64, String)>,
    pub by: Option<Uuid>,
}

/// Records `change` at the project's next version, replacing the path's current row; answers
/// the new version. Two changes at once cannot take the same version: the loser tries again.
pub async fn record(db: &Db, project: Uuid, change: Change) -> Result<i32, DbErr> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match record_once(db, project, &change).await {
            Err(e)
                if attempt < 5
                    && matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            other => return other,
        }
    }
}

async fn record_once(db: &Db, project: Uuid, change: &Change) -> Result<i32, DbErr> {
    let txn = db.begin().await?;
    let latest: Option<i32> = Files::find()
        .select_only()
        .column_as(Column::Version.max(), "v")
        .filter(Column::ProjectId.eq(project))
        .into_tuple::<Option<i32>>()
        .one(&txn)
        .await?
        .flatten();
    let version = latest.unwrap_or(0) + 1;
    Files::update_many()
        .col_expr(Column::SupersededIn, Expr::value(version))
        .filter(Column::ProjectId.eq(project))
        .filter(Column::Path.eq(&change.path))
        .filter(Column::SupersededIn.is_null())
        .exec(&txn)
        .await?;
    let (content, size, sha) = match &change.content {
        Some((sealed, size, sha)) => (Some(sealed.clone()), *size, Some(sha.clone())),
        None => (None, 0, None),
    };
    project_files::ActiveModel {
        id: Set(change.id),
        project_id: Set(project),
        path: Set(change.path.clone()),
        version: Set(version),
        // A deletion is never current: it replaces itself.
        superseded_in: Set(content.is_none().then_some(version)),
        size_bytes: Set(size),
        sha256: Set(sha),
        content: Set(content),
        created_by: Set(change.by),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    Files::delete_many()
        .filter(Column::ProjectId.eq(project))
        .filter(Column::SupersededIn.lte(version - KEEP_VERSIONS))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(version)
}
