//! shard's integration tests: one binary, real HTTP on port 0, a real SQLite file (or a fresh
//! Postgres database per test when SHARD_TEST_DATABASE_URL is set), and a real Docker engine
//! for the tests that need one.

mod accounts;
mod apps;
mod auth;
mod autobuild;
mod backups;
mod bounds;
mod cli;
mod client;
mod crash;
mod databases;
mod deploy;
mod diskfull;
mod docker;
mod domains;
mod edge;
mod files;
mod github;
mod gitserver;
mod helpers;
mod instances;
mod jobs;
mod metrics;
mod notifications;
mod peers;
mod plans;
mod process;
mod projects;
mod prometheus;
mod proxy;
mod redis;
mod s3;
mod schedules;
mod sessions;
mod sites;
mod swarm;
mod teams;
mod tenants;
mod tls;
mod tokens;
mod volume_backups;
mod volumes;
mod watchdog;
mod webhooks;
mod ws;
