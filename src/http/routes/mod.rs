//! Route handlers, one file per resource; each exposes `configure` for its scope.

pub mod audit;
pub mod auth;
pub mod backups;
pub mod cli_logins;
pub mod databases;
pub mod deployments;
pub mod domains;
pub mod env;
pub mod files;
pub mod github;
pub mod github_repos;
pub mod health;
pub mod instance_backups;
pub mod metrics;
pub mod nodes;
pub mod notifications;
pub mod plans;
pub mod project_view;
pub mod projects;
pub mod registry;
pub mod teams;
pub mod tokens;
pub mod users;
pub mod volume_backups;
pub mod volumes;
pub mod webhooks;
