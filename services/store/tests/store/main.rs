//! The store against a real PostgreSQL: each test has a fresh, migrated
//! database of its own (`ordercast_testkit::fresh_database`).

mod common;

mod events;
mod idempotency;
mod ledger;
mod migrations;
mod orders;
mod outbox;
mod requests;
mod restaurants;
mod retention;
mod sequencing;
mod snapshots;
