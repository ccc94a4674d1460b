//! shard's database migrations: one dated file per schema change, applied in order at
//! `shard serve` start and by `shard migrate`. A landed migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial_schema;
mod m20261122_000002_topic_events;
mod m20261123_000003_domain_status;
mod m20261123_000004_static_sites;
mod m20261123_000005_webhooks;
mod m20261127_000006_github_links;
mod m20261127_000007_metrics;
mod m20261127_000008_notification_channels;
mod m20261127_000009_metrics_index;
mod m20261127_000010_teams_tokens_audit;
mod m20261127_000011_swarm;
mod m20261127_000012_cli_logins;
mod m20261127_000013_shared_values;
mod m20261205_000014_bound_credentials;
mod m20261205_000015_build_plans;
mod m20261205_000016_volumes;
mod m20261205_000017_file_mounts;
mod m20261205_000018_databases;
mod m20261205_000019_backups;
mod m20261205_000020_backup_schedules;
mod m20261205_000021_metrics_subjects;
mod m20261206_000022_instance_backups;
mod m20261206_000023_scheduled_jobs_and_runs;
mod m20261206_000024_previews;

/// One migration run inside a transaction on every backend (sea-orm does so on Postgres only;
/// SQLite's DDL is transactional too): a migration that fails leaves nothing half-applied.
struct InTransaction(Box<dyn MigrationTrait>);

impl InTransaction {
    fn boxed(migration: impl MigrationTrait + 'static) -> Box<dyn MigrationTrait> {
        Box::new(InTransaction(Box::new(migration)))
    }
}

impl MigrationName for InTransaction {
    fn name(&self) -> &str {
        self.0.name()
    }
}

#[async_trait::async_trait]
impl MigrationTrait for InTransaction {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        self.0.up(m).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        self.0.down(m).await
    }
}

/// The ordered list of every migration shard knows.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            InTransaction::boxed(m20261122_000001_initial_schema::Migration),
            InTransaction::boxed(m20261122_000002_topic_events::Migration),
            InTransaction::boxed(m20261123_000003_domain_status::Migration),
            InTransaction::boxed(m20261123_000004_static_sites::Migration),
            InTransaction::boxed(m20261123_000005_webhooks::Migration),
            InTransaction::boxed(m20261127_000006_github_links::Migration),
            InTransaction::boxed(m20261127_000007_metrics::Migration),
            InTransaction::boxed(m20261127_000008_notification_channels::Migration),
            InTransaction::boxed(m20261127_000009_metrics_index::Migration),
            InTransaction::boxed(m20261127_000010_teams_tokens_audit::Migration),
            InTransaction::boxed(m20261127_000011_swarm::Migration),
            InTransaction::boxed(m20261127_000012_cli_logins::Migration),
            InTransaction::boxed(m20261127_000013_shared_values::Migration),
            InTransaction::boxed(m20261205_000014_bound_credentials::Migration),
            InTransaction::boxed(m20261205_000015_build_plans::Migration),
            InTransaction::boxed(m20261205_000016_volumes::Migration),
            InTransaction::boxed(m20261205_000017_file_mounts::Migration),
            InTransaction::boxed(m20261205_000018_databases::Migration),
            InTransaction::boxed(m20261205_000019_backups::Migration),
            InTransaction::boxed(m20261205_000020_backup_schedules::Migration),
            InTransaction::boxed(m20261205_000021_metrics_subjects::Migration),
            InTransaction::boxed(m20261206_000022_instance_backups::Migration),
            InTransaction::boxed(m20261206_000023_scheduled_jobs_and_runs::Migration),
            InTransaction::boxed(m20261206_000024_previews::Migration),
        ]
    }
}
