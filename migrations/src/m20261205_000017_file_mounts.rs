//! File mounts: files uploaded to a project (config files, certificates, a `robots.txt`),
//! mounted read-only into its app at `/{path}`. Every change is a row: an upload adds the new
//! content at the project's next `version`, a deletion adds a row without content; a row is
//! current until a later one for its path `superseded_in` it. The set at version N is what a
//! deployment that recorded `files_version = N` mounts. Content is sealed with the secret key.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("project_files")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("project_id"))
                .col(string_len("path", 255))
                .col(integer("version"))
                .col(integer_null("superseded_in"))
                .col(big_integer("size_bytes"))
                .col(string_len_null("sha256", 64))
                .col(blob_null("content"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_project_files_project_id")
                        .from("project_files", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        // One change per version of a project: two uploads at once cannot both take it.
        m.create_index(
            Index::create()
                .name("ix_project_files_project_id_version")
                .table("project_files")
                .col("project_id")
                .col("version")
                .unique()
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Alias::new("deployments"))
                .add_column(integer_null("files_version"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alias::new("deployments"))
                .drop_column(Alias::new("files_version"))
                .take(),
        )
        .await?;
        m.drop_table(Table::drop().table("project_files").take())
            .await
    }
}
