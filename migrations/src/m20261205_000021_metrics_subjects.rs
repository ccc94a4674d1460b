//! Metrics samples belong to a *subject*: an app (project id) or a one-click database
//! (database id). The table is made again without the foreign key to `projects` (SQLite cannot
//! drop one in place) and `project_id` becomes `subject_id`; the samples are copied across.
//! Deleting a project or a database now deletes its samples in the same code path. Like every
//! migration it runs in one transaction (through one connection), so a failure half-way
//! leaves the old table as it was.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const NEXT: &str = "metrics_samples_next";
const VALUES: &str = "ts, resolution_secs, cpu_percent, memory_bytes, memory_limit_bytes, \
    net_rx_bytes, net_tx_bytes, block_read_bytes, block_write_bytes, restart_count";

/// The table with its owner column named `owner`, and with `foreign` its key to projects.
fn table(name: &str, owner: &str, foreign: bool) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(Alias::new(name))
        .col(big_pk_auto("id"))
        .col(uuid(Alias::new(owner)))
        .col(timestamp_with_time_zone("ts"))
        .col(integer("resolution_secs").default(0))
        .col(double("cpu_percent"))
        .col(big_integer("memory_bytes"))
        .col(big_integer("memory_limit_bytes").default(0))
        .col(big_integer("net_rx_bytes"))
        .col(big_integer("net_tx_bytes"))
        .col(big_integer("block_read_bytes").default(0))
        .col(big_integer("block_write_bytes").default(0))
        .col(big_integer("restart_count").default(0));
    if foreign {
        t.foreign_key(
            ForeignKey::create()
                .name("fk_metrics_samples_project_id")
                .from(Alias::new(name), Alias::new(owner))
                .to("projects", "id")
                .on_delete(ForeignKeyAction::Cascade),
        );
    }
    t.take()
}

/// Makes `metrics_samples` again as `table(…, to, …)`, copying `from` into `to`, indexed by
/// `(to, resolution_secs, ts)`.
async fn remake(
    m: &SchemaManager<'_>,
    from: &str,
    to: &str,
    foreign: bool,
    old_index: &str,
    new_index: &str,
) -> Result<(), DbErr> {
    m.create_table(table(NEXT, to, foreign)).await?;
    m.get_connection()
        .execute_unprepared(&format!(
            "INSERT INTO {NEXT} ({to}, {VALUES}) SELECT {from}, {VALUES} FROM metrics_samples"
        ))
        .await?;
    m.drop_index(
        Index::drop()
            .name(old_index)
            .table("metrics_samples")
            .to_owned(),
    )
    .await?;
    m.drop_table(Table::drop().table("metrics_samples").to_owned())
        .await?;
    m.rename_table(
        Table::rename()
            .table(Alias::new(NEXT), Alias::new("metrics_samples"))
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name(new_index)
            .table("metrics_samples")
            .col(Alias::new(to))
            .col("resolution_secs")
            .col("ts")
            .take(),
    )
    .await
}

const PROJECT_INDEX: &str = "idx_metrics_samples_project_resolution_ts";
const SUBJECT_INDEX: &str = "idx_metrics_samples_subject_resolution_ts";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        remake(
            m,
            "project_id",
            "subject_id",
            false,
            PROJECT_INDEX,
            SUBJECT_INDEX,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // A database's samples have no project to belong to.
        m.get_connection()
            .execute_unprepared(
                "DELETE FROM metrics_samples WHERE subject_id NOT IN (SELECT id FROM projects)",
            )
            .await?;
        remake(
            m,
            "subject_id",
            "project_id",
            true,
            SUBJECT_INDEX,
            PROJECT_INDEX,
        )
        .await
    }
}
