use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "previews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The project previewed.
    pub project_id: Uuid,
    pub pr_number: i32,
    /// The child project serving it, while it has one.
    pub preview_project_id: Option<Uuid>,
    pub title: String,
    pub author: Option<String>,
    pub head_sha: String,
    pub head_ref: String,
    /// `owner/name` of the head's repository (another one for a fork).
    pub head_repo: String,
    pub fork: bool,
    pub state: crate::model::PreviewState,
    /// The head commit a maintainer approved (a fork's pull request builds only that one).
    pub approved_sha: Option<String>,
    /// The pull request comment shard keeps up to date.
    pub comment_id: Option<i64>,
    /// The GitHub deployment of the head commit.
    pub gh_deployment_id: Option<i64>,
    /// The child project's newest deployment.
    pub deployment_id: Option<Uuid>,
    /// Why it is in its state (awaiting approval, closed, evicted, expired).
    pub note: Option<String>,
    pub opened_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
