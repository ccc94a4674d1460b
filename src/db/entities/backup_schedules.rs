use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What it backs up: a database or a volume.
    pub database_id: Option<Uuid>,
    pub volume_id: Option<Uuid>,
    /// A cron expression, in UTC.
    pub cron: String,
    /// JSON array of destination ids.
    pub destination_ids: String,
    pub keep_last: Option<i32>,
    pub keep_days: Option<i32>,
    pub next_run_at: DateTimeUtc,
    pub last_run_at: Option<DateTimeUtc>,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTimeUtc,
    /// The instance's schedule: the age recipients (JSON array) its archives are sealed to.
    pub recipients: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
