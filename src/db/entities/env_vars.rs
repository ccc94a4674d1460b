use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "env_vars")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub key: String,
    pub value_sealed: Vec<u8>,
    pub secret: bool,
    pub build: bool,
    pub created_at: DateTimeUtc,
    /// For `SHARD_GIT_TOKEN`: the origin of the git URL it was saved for (sent there only).
    pub bound_host: Option<String>,
    /// A secret that previews of pull requests get too (a plain variable always does).
    pub preview: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
