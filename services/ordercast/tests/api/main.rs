//! The api role against real PostgreSQL and Redis, over real HTTP.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod amplification;
mod bad_input;
mod connections;
mod events;
mod group_commit;
mod idempotency;
mod limits;
mod metrics;
mod numbers;
mod outages;
mod requests;
mod retention;
mod transitions;
mod write_path;
