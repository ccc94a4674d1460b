//! The facts every part of shard shares, as types (the lowest layer: it imports nothing of
//! shard). Each is stored and sent as the same text as before; the database column and the
//! wire are the only places that text exists.

pub mod access;
pub mod data;
pub mod edge;
mod status;
pub mod text;
pub mod upstream;
pub mod work;

pub use access::{Role, Scope, UserRole};
pub use data::{BackupKind, BackupState, DatabaseKind, DatabaseState, DestinationKind};
pub use edge::{CertState, ChannelKind, CliLoginState, DeliveryState, DomainState, WebhookOutcome};
pub use status::DeploymentStatus;
pub use text::Unknown;
pub use upstream::Upstream;
pub use work::{
    BuildType, CommitState, Concurrency, JobKind, JobState, LogStream, PreviewState, RunState,
    RunTrigger, Trigger,
};
