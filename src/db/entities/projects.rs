use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub team_id: Option<Uuid>,
    pub git_account_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub git_url: String,
    pub branch: String,
    pub dockerfile: String,
    pub port: Option<i32>,
    pub health_path: String,
    pub health_timeout_secs: i32,
    pub memory_limit_mb: Option<i64>,
    pub cpu_limit_millis: Option<i32>,
    pub webhook_secret_sealed: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub build_type: crate::model::BuildType,
    pub static_dir: Option<String>,
    pub github_repo: Option<String>,
    pub github_hook_id: Option<i64>,
    pub replicas: i32,
    /// JSON object of node labels (`{"group": "edge"}`), Swarm only.
    pub placement: Option<String>,
    /// The origin the GitHub account's token may be sent to (the clone URL's, at import).
    pub github_origin: Option<String>,
    /// Whether an instance admin set the git URL (only then may it reach private networks).
    pub git_url_trusted: bool,
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub start_command: Option<String>,
    /// Set on a pull request's preview: the project it previews.
    pub preview_of: Option<Uuid>,
    pub pr_number: Option<i32>,
    /// Pull requests get previews (`pr-<number>-<slug>`), each removed after `ttl_days`,
    /// at most `max` at once (the oldest goes first).
    pub previews_enabled: bool,
    pub previews_ttl_days: i32,
    pub previews_max: i32,
    /// Basic auth in front of the previews' hosts: hex SHA-256 of the whole `Authorization`
    /// value a browser sends (`Basic <base64 of user:password>`).
    pub previews_auth_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
