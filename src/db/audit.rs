//! The audit log: who (user, token) did what to which resource of which team and project,
//! from where, and how it ended.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Condition, Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entities::audit_log::{self, Column, Entity as AuditLog};
use super::{Db, now};

pub use audit_log::Model as AuditEntry;

pub struct Entry<'a> {
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<&'a str>,
    pub token_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub status: Option<i32>,
}

pub async fn record(db: &Db, entry: Entry<'_>) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        id: NotSet,
        actor_id: Set(entry.actor_id),
        actor_name: Set(entry.actor_name.map(|n| n.chars().take(100).collect())),
        token_id: Set(entry.token_id),
        action: Set(entry.action.chars().take(64).collect()),
        target_type: Set(entry.target_type.chars().take(32).collect()),
        target_id: Set(entry.target_id),
        team_id: Set(entry.team_id),
        project_id: Set(entry.project_id),
        detail: Set(entry.detail),
        ip: Set(entry.ip.map(|ip| ip.chars().take(64).collect())),
        status: Set(entry.status),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Which entries to list. `teams: Some(..)` restricts to entries about those teams (team
/// owners); `None` is every entry (instance admins).
#[derive(Debug, Default)]
pub struct Filter {
    pub teams: Option<Vec<Uuid>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub project: Option<Uuid>,
    pub team: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries older than this id (the next page).
    pub before: Option<i64>,
    pub limit: u64,
}

/// Entries matching the filter, newest first.
pub async fn list(db: &Db, f: Filter) -> Result<Vec<AuditEntry>, DbErr> {
    let mut cond = Condition::all();
    if let Some(teams) = f.teams {
        cond = cond.add(Column::TeamId.is_in(teams));
    }
    if let Some(actor) = f.actor {
        cond = cond.add(Column::ActorName.eq(actor));
    }
    if let Some(action) = f.action {
        // A prefix: `projects` matches `projects.create` and `projects.env.replace`.
        cond = cond.add(
            Condition::any()
                .add(Column::Action.eq(action.clone()))
                .add(Column::Action.like(format!("{}.%", escape_like(&action)))),
        );
    }
    if let Some(project) = f.project {
        cond = cond.add(Column::ProjectId.eq(project));
    }
    if let Some(team) = f.team {
        cond = cond.add(Column::TeamId.eq(team));
    }
    if let Some(since) = f.since {
        cond = cond.add(Column::CreatedAt.gte(since));
    }
    if let Some(until) = f.until {
        cond = cond.add(Column::CreatedAt.lt(until));
    }
    if let Some(before) = f.before {
        cond = cond.add(Expr::col(Column::Id).lt(before));
    }
    AuditLog::find()
        .filter(cond)
        .order_by_desc(Column::Id)
        .limit(f.limit)
        .all(db)
        .await
}

/// `%` and `_` in a filter are literal characters.
fn escape_like(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '%' | '_' | '\\'))
        .collect()
}

/// Removes entries older than `before` (retention).
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = AuditLog::delete_many()
        .filter(Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
