use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    /// The job it ran for; empty for a one-off command.
    pub job_id: Option<Uuid>,
    /// JSON array of the command's words.
    pub command: String,
    pub trigger: crate::model::RunTrigger,
    pub status: crate::model::RunState,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    /// The live deployment whose image it ran.
    pub deployment_id: Option<Uuid>,
    pub container_id: Option<String>,
    pub started_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// While running: when its runner last said it is alive.
    pub heartbeat_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
