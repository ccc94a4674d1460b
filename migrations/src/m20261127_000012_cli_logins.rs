//! Pending command-line sign-ins (`shard login` device style) move from one instance's memory
//! to the database, so the CLI may poll any instance and the approval may reach any other.
//! The approved API token waits here sealed (AES-GCM, the code as associated data) until the
//! one poll that collects it deletes the row.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("cli_logins")
                .if_not_exists()
                .col(string_len("code", 16).primary_key())
                .col(string_len_uniq("poll_hash", 64))
                .col(string_len("name", 64))
                .col(string_len("stage", 16))
                .col(blob_null("token_sealed"))
                .col(string_len_null("username", 64))
                .col(timestamp_with_time_zone("expires_at"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("cli_logins").take()).await
    }
}
