//! What every task of a run shares: the scenario, the live figures, the
//! ledger, the run's restaurants and phase, and the HTTP clients.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::{Semaphore, watch};

use crate::ledger::Ledger;
use crate::scenario::Scenario;
use crate::stats::Stats;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Screens connect and traffic flows.
    Traffic,
    /// Traffic is over; screens read what is left, then stop.
    Settle,
    /// Stop now.
    Done,
}

/// A restaurant the run created.
pub struct Restaurant {
    pub id: String,
    /// The owner's token: writes and owner screens.
    pub owner: String,
}

/// What every task of the run shares.
pub struct Ctx {
    pub scenario: Scenario,
    pub stats: Stats,
    pub ledger: Ledger,
    pub restaurants: Vec<Restaurant>,
    pub phase: watch::Receiver<Phase>,
    /// For SSE and long-poll.
    pub streams: reqwest::Client,
    /// For api writes.
    pub api: reqwest::Client,
    pub in_flight: Semaphore,
    pub writes_sent: AtomicU64,
    pub traffic_over: AtomicBool,
    failures: Mutex<(u64, Vec<String>)>,
}

impl Ctx {
    /// A fresh context: empty ledger and figures, no write sent yet, and
    /// `scenario.max_in_flight` writes allowed at once.
    pub fn new(
        scenario: Scenario,
        restaurants: Vec<Restaurant>,
        phase: watch::Receiver<Phase>,
        streams: reqwest::Client,
        api: reqwest::Client,
    ) -> Ctx {
        Ctx {
            ledger: Ledger::new(restaurants.len()),
            stats: Stats::new(),
            restaurants,
            phase,
            streams,
            api,
            in_flight: Semaphore::new(scenario.max_in_flight),
            writes_sent: AtomicU64::new(0),
            traffic_over: AtomicBool::new(false),
            failures: Mutex::new((0, Vec::new())),
            scenario,
        }
    }

    /// Keeps the first distinct failure messages for the report.
    pub fn note_failure(&self, what: &str) {
        let mut f = self.failures.lock().expect("failures lock");
        f.0 += 1;
        if f.1.len() < 20 && !f.1.iter().any(|s| s == what) {
            f.1.push(what.to_owned());
        }
    }

    /// How many failures were noted, and the first distinct messages.
    pub fn failures(&self) -> (u64, Vec<String>) {
        self.failures.lock().expect("failures lock").clone()
    }
}
