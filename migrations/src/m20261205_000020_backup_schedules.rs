//! Backup schedules: per database or per volume, a cron expression (UTC), the destinations
//! each run goes to, and the retention applied after each run (keep the last N, keep N days).
//! `next_run_at` is claimed by a conditional update, so with several instances each run
//! happens once. Backups can now be of a volume (`backups.volume_id`).

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
                .col(uuid_null("database_id").unique_key())
                .col(uuid_null("volume_id").unique_key())
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
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_backup_schedules_volume_id")
                        .from("backup_schedules", "volume_id")
                        .to("volumes", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        // A volume's backups (a volume row outlives its project; a purged one clears this),
        // and which shard process runs a running backup, alive as of its heartbeat (so one
        // instance never fails another's backup, and a dead one's are failed in time).
        for column in [
            uuid_null("volume_id"),
            string_len_null("runner", 64),
            timestamp_with_time_zone_null("heartbeat_at"),
        ] {
            m.alter_table(Table::alter().table("backups").add_column(column).take())
                .await?;
        }
        m.create_index(
            Index::create()
                .name("ix_backups_volume_id")
                .table("backups")
                .col("volume_id")
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
        m.drop_index(
            Index::drop()
                .name("ix_backups_volume_id")
                .table("backups")
                .to_owned(),
        )
        .await?;
        for column in ["volume_id", "runner", "heartbeat_at"] {
            m.alter_table(Table::alter().table("backups").drop_column(column).take())
                .await?;
        }
        m.drop_table(Table::drop().table("backup_schedules").take())
            .await
    }
}
