//! Scheduled jobs and runs. A project's job is a cron schedule (UTC) and a command run in a
//! fresh container from the live image; `next_run_at` is claimed by a conditional update, so
//! each firing runs once. A run is one execution of a command: a job's (scheduled or "run
//! now") or a one-off (`job_id` empty). Its output is the topic `run:<id>` in `topic_events`;
//! a running run's runner says it is alive through `heartbeat_at`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("scheduled_jobs")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("project_id"))
                .col(string_len("name", 63))
                .col(string_len("schedule", 100))
                .col(text("command"))
                .col(integer("timeout_secs"))
                .col(string_len("concurrency", 16))
                .col(timestamp_with_time_zone("next_run_at"))
                .col(timestamp_with_time_zone_null("last_run_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_scheduled_jobs_project_id")
                        .from("scheduled_jobs", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_scheduled_jobs_project_name")
                .table("scheduled_jobs")
                .col("project_id")
                .col("name")
                .unique()
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_scheduled_jobs_next_run_at")
                .table("scheduled_jobs")
                .col("next_run_at")
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("runs")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("project_id"))
                .col(uuid_null("job_id"))
                .col(text("command"))
                .col(string_len("trigger", 16))
                .col(string_len("status", 16))
                .col(big_integer_null("exit_code"))
                .col(text_null("error"))
                .col(uuid_null("created_by"))
                .col(uuid_null("deployment_id"))
                .col(string_len_null("container_id", 80))
                .col(timestamp_with_time_zone("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .col(timestamp_with_time_zone_null("heartbeat_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_runs_project_id")
                        .from("runs", "project_id")
                        .to("projects", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_runs_job_id")
                        .from("runs", "job_id")
                        .to("scheduled_jobs", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        for (name, cols) in [
            ("ix_runs_project_started", &["project_id", "started_at"][..]),
            ("ix_runs_job_started", &["job_id", "started_at"][..]),
            ("ix_runs_status", &["status"][..]),
        ] {
            let mut index = Index::create();
            index.name(name).table("runs");
            for col in cols {
                index.col(*col);
            }
            m.create_index(index.take()).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("runs").take()).await?;
        m.drop_table(Table::drop().table("scheduled_jobs").take())
            .await
    }
}
