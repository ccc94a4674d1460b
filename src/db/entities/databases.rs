use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "databases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub name: String,
    pub kind: crate::model::DatabaseKind,
    pub version: String,
    pub image: String,
    pub status: crate::model::DatabaseState,
    /// Why it failed, or what it is waiting for.
    pub message: Option<String>,
    pub container_id: Option<String>,
    /// Its volume in the engine (`shard-db-<id>`).
    pub docker_volume: String,
    /// `{user, password, database}` as JSON, sealed (bound to the row id).
    pub credentials: Vec<u8>,
    /// Published on this host (admins only); none by default.
    pub public_port: Option<i32>,
    pub memory_limit_mb: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
