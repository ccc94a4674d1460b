//! Scheduled backups of the installation itself (`shard backup` run by the server): a
//! schedule with neither a database nor a volume is the instance's, and it names the age
//! public keys (`recipients`, a JSON array) its archives are encrypted to; the server keeps
//! no key that opens them. An instance backup row has `source_kind = 'instance'`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("backup_schedules")
                .add_column(text_null("recipients"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared(
            "DELETE FROM backup_schedules WHERE database_id IS NULL AND volume_id IS NULL",
        )
        .await?;
        db.execute_unprepared("DELETE FROM backups WHERE source_kind = 'instance'")
            .await?;
        m.alter_table(
            Table::alter()
                .table("backup_schedules")
                .drop_column("recipients")
                .to_owned(),
        )
        .await
    }
}
