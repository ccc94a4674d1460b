//! Data that outlives deployments and projects: one-click databases (`databases`), their
//! backups (`backups`, `restore`, `schedules` with retention), where backups are kept (`store`),
//! and the whole installation's backup (`instance`: `shard backup` / `shard restore`). Volumes and
//! file mounts belong to a project's deployments and live in `deploy`.

pub mod backups;
pub mod connection;
pub mod databases;
pub mod destinations;
mod gzip;
pub mod instance;
mod kinds;
pub mod restore;
pub mod schedules;
mod store;
pub mod volumes;

pub use databases::{Databases, StorageError};
