//! GitHub links: an imported project remembers its repository (`owner/name`) and the id of the
//! push webhook shard created there; a deployment remembers the last commit status it posted
//! to GitHub and why posting failed, if it did.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const COLUMNS: &[(&str, &str)] = &[
    ("projects", "github_repo"),
    ("projects", "github_hook_id"),
    ("deployments", "commit_status"),
    ("deployments", "commit_status_error"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let mut defs = [
            string_len_null("github_repo", 200),
            big_integer_null("github_hook_id"),
            string_len_null("commit_status", 20),
            string_len_null("commit_status_error", 500),
        ];
        for ((table, _), def) in COLUMNS.iter().zip(defs.iter_mut()) {
            m.alter_table(Table::alter().table(*table).add_column(def).take())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in COLUMNS {
            m.alter_table(Table::alter().table(*table).drop_column(*column).take())
                .await?;
        }
        Ok(())
    }
}
