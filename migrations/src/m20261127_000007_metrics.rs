//! Container metrics: a sample carries its resolution (the collector's raw samples, 1-minute
//! and 1-hour averages), the memory limit, block I/O and the restart count, and is found by
//! project, resolution and time.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[&str] = &[
    "resolution_secs",
    "memory_limit_bytes",
    "block_read_bytes",
    "block_write_bytes",
    "restart_count",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut defs = [
            integer("resolution_secs").default(0).take(),
            big_integer("memory_limit_bytes").default(0).take(),
            big_integer("block_read_bytes").default(0).take(),
            big_integer("block_write_bytes").default(0).take(),
            big_integer("restart_count").default(0).take(),
        ];
        for def in defs.iter_mut() {
            m.alter_table(
                Table::alter()
                    .table("metrics_samples")
                    .add_column(def)
                    .take(),
            )
            .await?;
        }
        m.create_index(
            Index::create()
                .name("idx_metrics_samples_project_resolution_ts")
                .table("metrics_samples")
                .col("project_id")
                .col("resolution_secs")
                .col("ts")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_metrics_samples_project_resolution_ts")
                .table("metrics_samples")
                .to_owned(),
        )
        .await?;
        for column in COLUMNS {
            m.alter_table(
                Table::alter()
                    .table("metrics_samples")
                    .drop_column(*column)
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
