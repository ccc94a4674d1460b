//! One-click databases: a managed container per database, with a volume of its own
//! (`docker_volume`) and generated credentials (`credentials`, sealed). `database_attachments`
//! says which projects may reach it and get its connection variables.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("databases")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_null("team_id"))
                .col(string_len("name", 63))
                .col(string_len("kind", 16))
                .col(string_len("version", 32))
                .col(string_len("image", 255))
                .col(string_len("status", 16))
                .col(string_len_null("message", 2000))
                .col(string_len_null("container_id", 100))
                .col(string_len_uniq("docker_volume", 100))
                .col(blob("credentials"))
                .col(integer_null("public_port"))
                .col(integer("memory_limit_mb"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_databases_team_id")
                        .from("databases", "team_id")
                        .to("teams", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_databases_team_id_name")
                .table("databases")
                .col("team_id")
                .col("name")
                .unique()
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("database_attachments")
                .if_not_exists()
                .col(uuid("database_id"))
                .col(uuid("project_id"))
                .col(timestamp_with_time_zone("created_at"))
                .primary_key(Index::create().col("database_id").col("project_id"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_database_attachments_database_id")
                        .from("database_attachments", "database_id")
                        .to("databases", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_database_attachments_project_id")
                        .from("database_attachments", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("database_attachments").take())
            .await?;
        m.drop_table(Table::drop().table("databases").take()).await
    }
}
