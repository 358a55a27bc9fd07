//! `ordercast-loadtest` as a library: scenarios, the screens, the traffic
//! driver, the exactly-once verifier and the reports. The binary is a thin
//! command line over [`run::run`].

pub mod chain;
pub mod ctx;
pub mod driver;
pub mod html;
pub mod ledger;
pub mod orders;
pub mod procstat;
pub mod report;
pub mod resolve;
pub mod run;
pub mod scenario;
pub mod screens;
pub mod stats;
pub mod verify;
