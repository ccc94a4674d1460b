//! Pull-request previews. A project may turn them on (`previews_enabled`, with a time to live
//! and a count limit). Each open pull request is a `previews` row; while it has a build it
//! owns a child project (`projects.preview_of`, `pr_number`) whose slug is
//! `pr-<number>-<parent slug>`, so the proxy, the pipeline and the removal of a project serve
//! it unchanged. A variable of the parent reaches previews when it is not secret, or when it
//! is marked `preview`. A fork's pull request builds only the head commit a maintainer
//! approved (`approved_sha`). `previews_auth_hash` (SHA-256 of the `Authorization` header
//! value) puts HTTP basic auth in front of the previews' hosts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            uuid_null("preview_of"),
            integer_null("pr_number"),
            boolean("previews_enabled").default(false).take(),
            integer("previews_ttl_days").default(7).take(),
            integer("previews_max").default(5).take(),
            string_len_null("previews_auth_hash", 64).take(),
        ] {
            m.alter_table(Table::alter().table("projects").add_column(column).take())
                .await?;
        }
        m.create_index(
            Index::create()
                .name("ix_projects_preview_of")
                .table("projects")
                .col("preview_of")
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("env_vars")
                .add_column(boolean("preview").default(false).take())
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("previews")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("project_id"))
                .col(integer("pr_number"))
                .col(uuid_null("preview_project_id"))
                .col(string_len("title", 300))
                .col(string_len_null("author", 100))
                .col(string_len("head_sha", 64))
                .col(string_len("head_ref", 255))
                .col(string_len("head_repo", 200))
                .col(boolean("fork"))
                .col(string_len("state", 24))
                .col(string_len_null("approved_sha", 64))
                .col(big_integer_null("comment_id"))
                .col(big_integer_null("gh_deployment_id"))
                .col(uuid_null("deployment_id"))
                .col(text_null("note"))
                .col(timestamp_with_time_zone("opened_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(timestamp_with_time_zone_null("closed_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_previews_project_id")
                        .from("previews", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_previews_project_pr")
                .table("previews")
                .col("project_id")
                .col("pr_number")
                .unique()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("previews").take()).await?;
        m.alter_table(
            Table::alter()
                .table("env_vars")
                .drop_column("preview")
                .take(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("ix_projects_preview_of")
                .table("projects")
                .to_owned(),
        )
        .await?;
        for column in [
            "preview_of",
            "pr_number",
            "previews_enabled",
            "previews_ttl_days",
            "previews_max",
            "previews_auth_hash",
        ] {
            m.alter_table(Table::alter().table("projects").drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
