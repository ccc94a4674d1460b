//! Data that outlives deployments and projects: one-click databases (`databases`), their
//! backups (`backups`, `restore`, `schedules` with retention) and where backups are kept (`store`). Volumes and
//! file mounts belong to a project's deployments and live in `deploy`.

pub mod backups;
pub mod connection;
pub mod databases;
pub mod destinations;
mod gzip;
mod kinds;
pub mod restore;
pub mod schedules;
mod store;
pub mod volumes;

pub use databases::{Databases, StorageError};
