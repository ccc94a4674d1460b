//! Teams and their members. Every user has a personal team (`personal_of`), created with the
//! user; other teams are made by users, who own them. Roles: `owner`, `admin`, `member`,
//! `viewer` (what each may do is decided in `access`, never here).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, TransactionTrait,
};
use uuid::Uuid;

use super::entities::projects;
use super::entities::team_members::{self, Entity as Members};
use super::entities::teams::{self, Entity as Teams};
use super::{Db, new_id, now};

pub use team_members::Model as Member;
pub use teams::Model as Team;

use crate::model::Role;

/// Creates a team of which `owner` is the first member, as owner.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    name: &str,
    slug: &str,
    owner: Uuid,
) -> Result<Team, DbErr> {
    let id = new_id();
    let team = teams::ActiveModel {
        id: Set(id),
        name: Set(name.to_string()),
        slug: Set(slug.to_string()),
        created_at: Set(now()),
        personal_of: Set(None),
    }
    .insert(db)
    .await?;
    add_member(db, id, owner, Role::Owner).await?;
    Ok(team)
}

/// Creates a user's personal team (named after them; its slug is its id, so it never takes a
/// name another team may want).
pub async fn create_personal<C: ConnectionTrait>(
    db: &C,
    user: Uuid,
    username: &str,
) -> Result<Team, DbErr> {
    let id = new_id();
    let team = teams::ActiveModel {
        id: Set(id),
        name: Set(username.to_string()),
        slug: Set(id.simple().to_string()),
        created_at: Set(now()),
        personal_of: Set(Some(user)),
    }
    .insert(db)
    .await?;
    add_member(db, id, user, Role::Owner).await?;
    Ok(team)
}

pub async fn add_member<C: ConnectionTrait>(
    db: &C,
    team: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), DbErr> {
    team_members::ActiveModel {
        team_id: Set(team),
        user_id: Set(user),
        role: Set(role),
        created_at: Set(now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

pub async fn find(db: &Db, id: Uuid) -> Result<Option<Team>, DbErr> {
    Teams::find_by_id(id).one(db).await
}

pub async fn personal(db: &Db, user: Uuid) -> Result<Option<Team>, DbErr> {
    Teams::find()
        .filter(teams::Column::PersonalOf.eq(user))
        .one(db)
        .await
}

/// The user's role in the team, if they are a member.
pub async fn role_of(db: &Db, team: Uuid, user: Uuid) -> Result<Option<Role>, DbErr> {
    Ok(Members::find_by_id((team, user))
        .one(db)
        .await?
        .map(|m| m.role))
}

/// The teams a user belongs to with their role there, personal team first.
pub async fn of_user(db: &Db, user: Uuid) -> Result<Vec<(Team, Role)>, DbErr> {
    let memberships = Members::find()
        .filter(team_members::Column::UserId.eq(user))
        .all(db)
        .await?;
    let ids: Vec<Uuid> = memberships.iter().map(|m| m.team_id).collect();
    let teams = Teams::find()
        .filter(teams::Column::Id.is_in(ids))
        .order_by_asc(teams::Column::CreatedAt)
        .all(db)
        .await?;
    let mut out: Vec<(Team, Role)> = teams
        .into_iter()
        .filter_map(|t| {
            let role = memberships.iter().find(|m| m.team_id == t.id)?.role;
            Some((t, role))
        })
        .collect();
    out.sort_by_key(|(t, _)| t.personal_of != Some(user));
    Ok(out)
}

/// The ids of the teams a user belongs to.
pub async fn ids_of_user(db: &Db, user: Uuid) -> Result<Vec<Uuid>, DbErr> {
    Ok(Members::find()
        .filter(team_members::Column::UserId.eq(user))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.team_id)
        .collect())
}

/// A team's members with their usernames, owners first then by name.
pub async fn members(db: &Db, team: Uuid) -> Result<Vec<(Member, String)>, DbErr> {
    let members = Members::find()
        .filter(team_members::Column::TeamId.eq(team))
        .all(db)
        .await?;
    let names = super::users::usernames(db, members.iter().map(|m| m.user_id)).await?;
    let mut out: Vec<(Member, String)> = members
        .into_iter()
        .map(|m| {
            let name = names.get(&m.user_id).cloned().unwrap_or_default();
            (m, name)
        })
        .collect();
    out.sort_by(|(a, an), (b, bn)| (a.role != Role::Owner, an).cmp(&(b.role != Role::Owner, bn)));
    Ok(out)
}

pub async fn set_role(db: &Db, team: Uuid, user: Uuid, role: Role) -> Result<bool, DbErr> {
    let result = Members::update_many()
        .col_expr(team_members::Column::Role, Expr::val(role))
        .filter(team_members::Column::TeamId.eq(team))
        .filter(team_members::Column::UserId.eq(user))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn remove_member(db: &Db, team: Uuid, user: Uuid) -> Result<bool, DbErr> {
    let result = Members::delete_many()
        .filter(team_members::Column::TeamId.eq(team))
        .filter(team_members::Column::UserId.eq(user))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn count_owners(db: &Db, team: Uuid) -> Result<u64, DbErr> {
    Members::find()
        .filter(team_members::Column::TeamId.eq(team))
        .filter(team_members::Column::Role.eq(Role::Owner))
        .count(db)
        .await
}

pub async fn count_projects(db: &Db, team: Uuid) -> Result<u64, DbErr> {
    projects::Entity::find()
        .filter(projects::Column::TeamId.eq(team))
        .count(db)
        .await
}

pub async fn rename(db: &Db, team: Team, name: &str, slug: &str) -> Result<Team, DbErr> {
    let mut active: teams::ActiveModel = team.into();
    active.name = Set(name.to_string());
    active.slug = Set(slug.to_string());
    active.update(db).await
}

/// Deletes a team (its memberships and invitations go with it).
pub async fn delete(db: &Db, team: Uuid) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    Members::delete_many()
        .filter(team_members::Column::TeamId.eq(team))
        .exec(&txn)
        .await?;
    Teams::delete_by_id(team).exec(&txn).await?;
    txn.commit().await
}

/// Who hears of a project's events (deploys, crashes, certificates): the members of its team
/// who may act on them (owners, admins and members; viewers only read), each through their own
/// channels. A project outside any team (from before teams) tells its creator.
pub async fn notice_recipients(
    db: &Db,
    project: &super::projects::Project,
) -> Result<Vec<Uuid>, DbErr> {
    let Some(team) = project.team_id else {
        return Ok(vec![project.owner_id]);
    };
    Ok(Members::find()
        .filter(team_members::Column::TeamId.eq(team))
        .filter(team_members::Column::Role.ne(Role::Viewer))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}
