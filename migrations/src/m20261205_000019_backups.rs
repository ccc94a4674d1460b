//! Backups: where they go (`backup_destinations`: a local directory or an S3-compatible store,
//! its secret sealed) and each backup taken (`backups`: what it is of, where it went, its
//! checksum and size, what the source held when it was taken, and whether a restore of it was
//! checked). A backup outlives its database: the link is cleared, the name kept.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("backup_destinations")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(string_len_uniq("name", 63))
                .col(string_len("kind", 16))
                .col(string_len_null("path", 1024))
                .col(string_len_null("endpoint", 1024))
                .col(string_len_null("bucket", 255))
                .col(string_len_null("prefix", 255))
                .col(string_len_null("region", 64))
                .col(string_len_null("access_key", 255))
                .col(blob_null("secret_key"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("backups")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_null("database_id"))
                .col(string_len("source_name", 100))
                .col(string_len("source_kind", 16))
                .col(uuid_null("destination_id"))
                .col(string_len("status", 16))
                .col(string_len_null("step", 16))
                .col(string_len_null("error", 4000))
                .col(string_len("object_key", 1024))
                .col(big_integer_null("size_bytes"))
                .col(string_len_null("sha256", 64))
                .col(text_null("source_counts"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(timestamp_with_time_zone_null("verified_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_backups_database_id")
                        .from("backups", "database_id")
                        .to("databases", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_backups_destination_id")
                        .from("backups", "destination_id")
                        .to("backup_destinations", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_backups_database_id")
                .table("backups")
                .col("database_id")
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("backups").take()).await?;
        m.drop_table(Table::drop().table("backup_destinations").take())
            .await
    }
}
