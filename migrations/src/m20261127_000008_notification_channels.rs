//! Notification channels (a user's webhook, Slack, Discord or email destination, for all of
//! their projects or one) and the deliveries made through them, one row per event and channel
//! with its attempts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from: &'static str, column: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from}_{column}"))
        .from(from, column)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("notification_channels")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(uuid_null("project_id"))
                .col(string_len("kind", 16))
                // The destination (a webhook URL is itself a secret), sealed; and a masked hint.
                .col(blob("target_sealed"))
                .col(string_len("target_hint", 200))
                .col(blob_null("secret_sealed"))
                // Comma-separated event names; empty means every event.
                .col(string_len("events", 500))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut fk("notification_channels", "user_id", "users"))
                .foreign_key(&mut fk("notification_channels", "project_id", "projects"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_notification_channels_user")
                .table("notification_channels")
                .col("user_id")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("notification_deliveries")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("channel_id"))
                .col(string_len("event", 40))
                .col(text("payload"))
                // pending, delivered, failed
                .col(string_len("status", 16))
                .col(integer("attempts"))
                .col(string_len_null("last_error", 500))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut fk(
                    "notification_deliveries",
                    "channel_id",
                    "notification_channels",
                ))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_notification_deliveries_channel_created")
                .table("notification_deliveries")
                .col("channel_id")
                .col("created_at")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["notification_deliveries", "notification_channels"] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
