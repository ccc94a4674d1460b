//! Custom domains get a status (`pending`, `verified`, `failed`) with the last check's message,
//! and the certificate its own message (why issuing or renewing failed).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn add(column: ColumnDef) -> TableAlterStatement {
    Table::alter().table("domains").add_column(column).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        m.alter_table(add(string_len("status", 16).default("pending").take()))
            .await?;
        m.alter_table(add(text_null("message"))).await?;
        m.alter_table(add(timestamp_with_time_zone_null("checked_at")))
            .await?;
        m.alter_table(add(text_null("cert_message"))).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in ["status", "message", "checked_at", "cert_message"] {
            m.alter_table(Table::alter().table("domains").drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
