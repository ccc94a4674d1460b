//! Persisted events of the WebSocket topics that are not a deployment log: `project:<id>`
//! (deployment and container status changes) and `user:<id>` (notifications). Numbered from 1
//! per topic without gaps, so subscribers can replay with `since`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("topic_events")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(string_len("topic", 100))
                .col(big_integer("seq"))
                .col(timestamp_with_time_zone("ts"))
                .col(string_len("kind", 32))
                .col(text("payload"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_topic_events_topic_seq")
                .table("topic_events")
                .col("topic")
                .col("seq")
                .unique()
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("topic_events").if_exists().take())
            .await
    }
}
