use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub domain: String,
    pub verification_token: String,
    pub verified_at: Option<DateTimeUtc>,
    pub cert_status: crate::model::CertState,
    pub cert_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub status: crate::model::DomainState,
    pub message: Option<String>,
    pub checked_at: Option<DateTimeUtc>,
    pub cert_message: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
