//! The edge role against real PostgreSQL and Redis with real SSE,
//! WebSocket and long-poll clients.

#[path = "../common/mod.rs"]
mod common;

mod amplification;
mod assets;
mod clients;
mod cluster;
mod commands;
mod compression;
mod cors;
mod cursors;
mod debug_views;
mod delivery;
mod floods;
mod guests;
mod isolation;
mod ledger;
mod logs;
mod outages;
mod pressure;
mod protocols;
mod tls;
mod traces;
