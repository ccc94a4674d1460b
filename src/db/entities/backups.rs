use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "backups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The database it is of; none once that database was deleted.
    pub database_id: Option<Uuid>,
    pub source_name: String,
    pub source_kind: crate::model::BackupKind,
    /// The volume it is of (a volume backup).
    pub volume_id: Option<Uuid>,
    /// The shard process (per data dir) taking it, and when it last said it still does.
    pub runner: Option<String>,
    pub heartbeat_at: Option<DateTimeUtc>,
    pub destination_id: Option<Uuid>,
    pub status: crate::model::BackupState,
    /// The step that failed: `dump`, `upload`, `verify`.
    pub step: Option<String>,
    pub error: Option<String>,
    /// Where it is in its destination (relative to its directory or prefix).
    pub object_key: String,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// JSON `{table: rows}` the source held when the dump began.
    pub source_counts: Option<String>,
    pub created_by: Option<Uuid>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    pub verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
