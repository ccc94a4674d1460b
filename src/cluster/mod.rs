//! Several shard instances on one Postgres: `leader` (which instance runs the singletons,
//! by a Postgres advisory lock) and `relay` (hub events fanned out to the other instances by
//! `LISTEN/NOTIFY`). With SQLite there is one instance and neither does anything.

pub mod engines;
pub mod leader;
pub mod nodes;

pub use engines::Engines;
pub use leader::Leadership;
