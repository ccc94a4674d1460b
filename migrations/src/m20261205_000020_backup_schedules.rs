//! Backup schedules: per database, a cron expression (UTC), the destinations each run goes
//! to, and the retention applied after each run (keep the last N, keep N days). `next_run_at`
//! is claimed by a conditional update, so with several instances each run happens once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("backup_schedules")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid_uniq("database_id"))
                .col(string_len("cron", 100))
                .col(text("destination_ids"))
                .col(integer_null("keep_last"))
                .col(integer_null("keep_days"))
                .col(timestamp_with_time_zone("next_run_at"))
                .col(timestamp_with_time_zone_null("last_run_at"))
                .col(uuid_null("updated_by"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_backup_schedules_database_id")
                        .from("backup_schedules", "database_id")
                        .to("databases", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_backup_schedules_next_run_at")
                .table("backup_schedules")
                .col("next_run_at")
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("backup_schedules").take())
            .await
    }
}
