//! Projects get a build type: `dockerfile` (an app container) or `static` (files copied out of
//! the built image from `static_dir` and served by shard itself).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("projects")
                .add_column(string_len("build_type", 16).default("dockerfile").take())
                .take(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("projects")
                .add_column(string_len_null("static_dir", 255))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in ["build_type", "static_dir"] {
            m.alter_table(Table::alter().table("projects").drop_column(column).take())
                .await?;
        }
        Ok(())
    }
}
