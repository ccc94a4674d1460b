//! shard: a self-hosted PaaS in one binary. See ARCHITECTURE.md for the map of this crate.

pub mod access;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod db;
pub mod deploy;
pub mod docker;
pub mod egress;
pub mod git;
pub mod github;
pub mod http;
pub mod hub;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod notifications;
pub mod proxy;
pub mod secrets;
pub mod setup;
pub mod state;
pub mod supervisor;
pub mod telemetry;
pub mod validate;
