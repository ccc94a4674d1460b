//! GitHub push webhooks: a delivery records what shard did with it (a short detail and the
//! deployment it queued), and a deployment started by a push names the pusher.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("webhook_deliveries")
                .add_column(string_len_null("detail", 500))
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("webhook_deliveries")
                .add_column(uuid_null("deployment_id"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_project_created")
                .table("webhook_deliveries")
                .col("project_id")
                .col("created_at")
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("deployments")
                .add_column(string_len_null("pusher", 100))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_webhook_deliveries_project_created")
                .table("webhook_deliveries")
                .to_owned(),
        )
        .await?;
        for column in ["detail", "deployment_id"] {
            m.alter_table(
                Table::alter()
                    .table("webhook_deliveries")
                    .drop_column(column)
                    .take(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table("deployments")
                .drop_column("pusher")
                .take(),
        )
        .await
    }
}
