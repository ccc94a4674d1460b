//! Teams, scoped tokens and a fuller audit log. A team can be someone's personal team
//! (`personal_of`); every existing user gets one, as owner, and every project without a team
//! moves to its owner's. API tokens get a scope (existing ones keep full rights: `admin`) and an
//! optional project list; audit entries name the actor (surviving the user's removal), the token
//! used, the team and project touched and the answer's status. Invitations are single-use links
//! bound to one user, stored as hashes.

use sea_orm_migration::sea_orm::ConnectionTrait;
use sea_orm_migration::sea_orm::prelude::{DateTimeUtc, Uuid};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const AUDIT_COLUMNS: &[&str] = &["actor_name", "token_id", "team_id", "project_id", "status"];

fn index(table: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create()
        .name(format!("idx_{table}_{}", cols.join("_")))
        .table(Alias::new(table))
        .take();
    for col in cols {
        index.col(Alias::new(*col));
    }
    if unique {
        index.unique();
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("teams")
                .add_column(uuid_null("personal_of"))
                .take(),
        )
        .await?;
        m.create_index(index("teams", &["personal_of"], true))
            .await?;
        m.create_index(index("projects", &["team_id"], false))
            .await?;

        m.alter_table(
            Table::alter()
                .table("api_tokens")
                .add_column(string_len("scope", 16).default("admin"))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("api_tokens")
                .add_column(text_null("project_ids"))
                .take(),
        )
        .await?;

        let mut audit = [
            string_len_null("actor_name", 100),
            uuid_null("token_id"),
            uuid_null("team_id"),
            uuid_null("project_id"),
            integer_null("status"),
        ];
        for def in audit.iter_mut() {
            m.alter_table(Table::alter().table("audit_log").add_column(def).take())
                .await?;
        }
        m.create_index(index("audit_log", &["team_id", "created_at"], false))
            .await?;
        m.create_index(index("audit_log", &["actor_id", "created_at"], false))
            .await?;

        m.create_table(
            Table::create()
                .table("invitations")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("team_id"))
                .col(string_len_uniq("token_hash", 64))
                .col(string_len("username", 64))
                .col(string_len("role", 16))
                .col(uuid_null("invited_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("accepted_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_invitations_team_id")
                        .from("invitations", "team_id")
                        .to("teams", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(index("invitations", &["team_id"], false))
            .await?;

        backfill_personal_teams(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("invitations").if_exists().take())
            .await?;
        for col in AUDIT_COLUMNS {
            m.alter_table(Table::alter().table("audit_log").drop_column(*col).take())
                .await?;
        }
        for col in ["scope", "project_ids"] {
            m.alter_table(Table::alter().table("api_tokens").drop_column(col).take())
                .await?;
        }
        m.alter_table(
            Table::alter()
                .table("teams")
                .drop_column("personal_of")
                .take(),
        )
        .await
    }
}

/// Gives every user a personal team they own and moves team-less projects to their owner's.
async fn backfill_personal_teams(m: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = m.get_connection();
    let users = db
        .query_all(
            &Query::select()
                .columns([Alias::new("id"), Alias::new("username")])
                .from("users")
                .to_owned(),
        )
        .await?;
    let now = chrono_now();
    for row in users {
        let user: Uuid = row.try_get("", "id")?;
        let username: String = row.try_get("", "username")?;
        let team = Uuid::now_v7();
        db.execute(
            &Query::insert()
                .into_table("teams")
                .columns(["id", "name", "slug", "created_at", "personal_of"])
                .values_panic([
                    team.into(),
                    username.into(),
                    team.simple().to_string().into(),
                    now.into(),
                    user.into(),
                ])
                .to_owned(),
        )
        .await?;
        db.execute(
            &Query::insert()
                .into_table("team_members")
                .columns(["team_id", "user_id", "role", "created_at"])
                .values_panic([team.into(), user.into(), "owner".into(), now.into()])
                .to_owned(),
        )
        .await?;
        db.execute(
            &Query::update()
                .table("projects")
                .value("team_id", team)
                .and_where(Expr::col("owner_id").eq(user))
                .and_where(Expr::col("team_id").is_null())
                .to_owned(),
        )
        .await?;
    }
    Ok(())
}

fn chrono_now() -> DateTimeUtc {
    DateTimeUtc::from(std::time::SystemTime::now())
}
