//! One sea-orm entity per table that code reads or writes. The migration creates the full
//! schema; a table gets its entity here when a feature starts using it.

pub mod api_tokens;
pub mod audit_log;
pub mod backup_destinations;
pub mod backup_schedules;
pub mod backups;
pub mod cli_logins;
pub mod database_attachments;
pub mod databases;
pub mod deployment_logs;
pub mod deployments;
pub mod domains;
pub mod env_vars;
pub mod git_accounts;
pub mod invitations;
pub mod jobs;
pub mod metrics_samples;
pub mod notification_channels;
pub mod notification_deliveries;
pub mod previews;
pub mod project_files;
pub mod projects;
pub mod runs;
pub mod scheduled_jobs;
pub mod sessions;
pub mod shared_values;
pub mod team_members;
pub mod teams;
pub mod topic_events;
pub mod users;
pub mod volumes;
pub mod webhook_deliveries;

pub mod prelude {
    pub use super::api_tokens::Entity as ApiTokens;
    pub use super::audit_log::Entity as AuditLog;
    pub use super::deployment_logs::Entity as DeploymentLogs;
    pub use super::deployments::Entity as Deployments;
    pub use super::domains::Entity as Domains;
    pub use super::env_vars::Entity as EnvVars;
    pub use super::git_accounts::Entity as GitAccounts;
    pub use super::invitations::Entity as Invitations;
    pub use super::jobs::Entity as Jobs;
    pub use super::metrics_samples::Entity as MetricsSamples;
    pub use super::notification_channels::Entity as NotificationChannels;
    pub use super::notification_deliveries::Entity as NotificationDeliveries;
    pub use super::projects::Entity as Projects;
    pub use super::sessions::Entity as Sessions;
    pub use super::team_members::Entity as TeamMembers;
    pub use super::teams::Entity as Teams;
    pub use super::topic_events::Entity as TopicEvents;
    pub use super::users::Entity as Users;
    pub use super::webhook_deliveries::Entity as WebhookDeliveries;
}
