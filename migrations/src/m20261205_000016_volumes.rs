//! Volumes: named Docker volumes a project mounts, which outlive its deployments and the
//! project itself. `project_id` is cleared when the project goes (the volume is then
//! *detached*, `detached_at` set, kept `retention.detached_volumes_days`); `project_name`
//! remembers whose it was. `docker_name` is the engine's name for it.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("volumes")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_null("project_id"))
                .col(uuid_null("team_id"))
                .col(string_len("name", 63))
                .col(string_len("mount_path", 255))
                .col(string_len_uniq("docker_name", 100))
                .col(string_len_null("project_name", 100))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("detached_at"))
                .col(big_integer_null("size_bytes"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_volumes_project_id")
                        .from("volumes", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_volumes_team_id")
                        .from("volumes", "team_id")
                        .to("teams", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_volumes_project_id_name")
                .table("volumes")
                .col("project_id")
                .col("name")
                .unique()
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("volumes").take()).await
    }
}
