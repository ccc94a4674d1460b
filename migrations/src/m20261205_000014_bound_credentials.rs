//! Credentials bound to where they were given for. `env_vars.bound_host` is the origin
//! (`scheme://host:port`) of the project's git URL when a `SHARD_GIT_TOKEN` was saved: the
//! token is sent to that origin only; `projects.github_origin` is the same for the GitHub
//! account's token (the origin of the clone URL GitHub gave at import). `projects.git_url_trusted` says whether the git URL was
//! last set by an instance admin; only then may a fetch reach the host's own networks. Rows from
//! before this change are trusted when the project's creator is an admin, as they were.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let add = |table: &str, column: ColumnDef| {
            Table::alter()
                .table(Alias::new(table))
                .add_column(column)
                .take()
        };
        m.alter_table(add("env_vars", string_len_null("bound_host", 300)))
            .await?;
        m.alter_table(add("projects", string_len_null("github_origin", 300)))
            .await?;
        m.alter_table(add(
            "projects",
            boolean("git_url_trusted").default(false).take(),
        ))
        .await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE projects SET git_url_trusted = TRUE WHERE owner_id IN \
                 (SELECT id FROM users WHERE role = 'admin')",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("env_vars", "bound_host"),
            ("projects", "github_origin"),
            ("projects", "git_url_trusted"),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Alias::new(table))
                    .drop_column(Alias::new(column))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
