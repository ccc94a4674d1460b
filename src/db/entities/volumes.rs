use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "volumes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub mount_path: String,
    pub docker_name: String,
    pub project_name: Option<String>,
    pub created_at: DateTimeUtc,
    pub detached_at: Option<DateTimeUtc>,
    pub size_bytes: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
