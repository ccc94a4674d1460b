//! Builds without a Dockerfile: a project's overrides of the build plan. `root_dir` is the
//! directory of the repository the app lives in (monorepos); the three commands replace what
//! the planner detected. `build_type` gains the value `auto` (a text column already); projects
//! from before keep `dockerfile` and build as they did.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: [(&str, u32); 4] = [
    ("root_dir", 255),
    ("install_command", 4096),
    ("build_command", 4096),
    ("start_command", 4096),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (column, len) in COLUMNS {
            m.alter_table(
                Table::alter()
                    .table(Alias::new("projects"))
                    .add_column(string_len_null(column, len))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (column, _) in COLUMNS {
            m.alter_table(
                Table::alter()
                    .table(Alias::new("projects"))
                    .drop_column(Alias::new(column))
                    .take(),
            )
            .await?;
        }
        Ok(())
    }
}
