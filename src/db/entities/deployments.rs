use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub status: crate::model::DeploymentStatus,
    pub trigger: crate::model::Trigger,
    pub from_deployment_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub image: Option<String>,
    pub container_id: Option<String>,
    pub upstream: Option<String>,
    pub error_step: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    pub pusher: Option<String>,
    pub commit_status: Option<crate::model::CommitState>,
    pub commit_status_error: Option<String>,
    /// The Swarm service running this deployment (`runtime.kind = "swarm"`).
    pub service_id: Option<String>,
    /// The project's file-mount version this deployment mounts (set at its start).
    pub files_version: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
