//! The facts every part of shard shares, as types (the lowest layer: it imports nothing of
//! shard). Each is stored and sent as the same text as before; the database column and the
//! wire are the only places that text exists.

mod status;
pub mod upstream;

pub use status::DeploymentStatus;
pub use upstream::Upstream;
