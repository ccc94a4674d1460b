//! Running apps on Docker Swarm: a project's `replicas` (how many copies of its app run, 1 by
//! default) and `placement` (node labels its replicas are limited to, a JSON object), and a
//! deployment's `service_id` (the Swarm service that runs it; plain-Docker deployments keep
//! using `container_id`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let add = |table: &str, column: ColumnDef| {
            Table::alter()
                .table(Alias::new(table))
                .add_column(column)
                .take()
        };
        m.alter_table(add("projects", integer("replicas").default(1).take()))
            .await?;
        m.alter_table(add("projects", text_null("placement")))
            .await?;
        m.alter_table(add("deployments", string_len_null("service_id", 64)))
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("projects", "replicas"),
            ("projects", "placement"),
            ("deployments", "service_id"),
        ] {
            m.alter_table(
                Table::alter()
                    .table(Alias::new(table))
                    .drop_column(Alias::new(column))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
