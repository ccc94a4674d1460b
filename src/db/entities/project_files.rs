use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "project_files")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    /// Relative to `/`, e.g. `etc/app/config.toml`.
    pub path: String,
    /// The project's file version this change made.
    pub version: i32,
    /// The version of the change that replaced or deleted it; none while current.
    pub superseded_in: Option<i32>,
    pub size_bytes: i64,
    /// Hex SHA-256 of the content; none for a deletion.
    pub sha256: Option<String>,
    /// The content, sealed (bound to the row id); none for a deletion.
    pub content: Option<Vec<u8>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
