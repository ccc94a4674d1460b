//! Data that outlives deployments and projects: one-click databases (`databases`) and their
//! backups (`backups`). Volumes and
//! file mounts belong to a project's deployments and live in `deploy`.

pub mod backups;
pub mod connection;
pub mod databases;
pub mod restore;

pub use databases::{Databases, StorageError};
