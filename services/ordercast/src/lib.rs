//! The `ordercast` binary as a library, so tests start the real service
//! in-process on port 0.

pub mod admin;
pub mod app;
pub mod config;
pub mod files;
pub mod metrics;
pub mod migrate;
pub mod telemetry;
pub mod token;

pub use app::{App, Settings};
pub use migrate::migrate;
