//! Data that outlives deployments and projects: one-click databases (`databases`). Volumes and
//! file mounts belong to a project's deployments and live in `deploy`.

pub mod databases;

pub use databases::{Databases, StorageError};
