//! Values every shard instance on one database shares, sealed (AES-GCM with the key as
//! associated data): issued certificates with their private keys, the ACME account, pending
//! HTTP-01 answers (so whichever instance the CA reaches can answer), and the registry
//! credentials Swarm nodes pull with.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("shared_values")
                .if_not_exists()
                .col(string_len("key", 300).primary_key())
                .col(blob("value_sealed"))
                .col(timestamp_with_time_zone("updated_at"))
                .col(timestamp_with_time_zone_null("expires_at"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_shared_values_updated_at")
                .table("shared_values")
                .col("updated_at")
                .if_not_exists()
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("shared_values").take())
            .await
    }
}
