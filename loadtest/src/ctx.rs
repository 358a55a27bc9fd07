//! What every task of a run shares: the scenario, the live figures, the
//! ledger, the run's regions, restaurants and phase, and the HTTP clients.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};

use crate::ledger::Ledger;
use crate::resolve::Unsettled;
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

/// A region of the deployment. A single-region run has one, named
/// `local`, made of `--api` and `--edge`.
pub struct Region {
    pub name: String,
    pub apis: Vec<String>,
    pub edges: Arc<[String]>,
}

/// A restaurant the run created.
pub struct Restaurant {
    pub id: String,
    /// The owner's token: writes and owner screens.
    pub owner: String,
    /// Index of its home region in [`Ctx::regions`].
    pub home: usize,
}

/// What every task of the run shares.
pub struct Ctx {
    pub scenario: Scenario,
    pub stats: Stats,
    pub ledger: Ledger,
    pub regions: Vec<Region>,
    pub restaurants: Vec<Restaurant>,
    /// Restaurant id → index in `restaurants`.
    pub by_id: HashMap<String, usize>,
    pub phase: watch::Receiver<Phase>,
    /// For SSE and long-poll.
    pub streams: reqwest::Client,
    /// For api writes.
    pub api: reqwest::Client,
    pub in_flight: Semaphore,
    pub writes_sent: AtomicU64,
    /// Numbers each logical write (its Idempotency-Key and tag).
    pub write_ids: AtomicU64,
    /// Run µs after which a write is retried no more (the end of the
    /// settle phase as scheduled); `u64::MAX` until traffic starts.
    pub retry_until_us: AtomicU64,
    /// Tells this run's keys and tags from any other's.
    pub run_tag: String,
    pub traffic_over: AtomicBool,
    /// Writes whose first attempts had no certain outcome and that may
    /// have committed more than once (creations without a key), looked up
    /// again before the screens settle.
    pub unsettled: Mutex<Vec<Unsettled>>,
    failures: Mutex<(u64, Vec<String>)>,
    retry_reasons: Mutex<BTreeMap<String, u64>>,
}

impl Ctx {
    /// A fresh context: empty ledger and figures, no write sent yet, and
    /// `scenario.max_in_flight` writes allowed at once.
    pub fn new(
        scenario: Scenario,
        regions: Vec<Region>,
        restaurants: Vec<Restaurant>,
        phase: watch::Receiver<Phase>,
        streams: reqwest::Client,
        api: reqwest::Client,
    ) -> Ctx {
        let by_id = restaurants
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Ctx {
            ledger: Ledger::new(restaurants.len()),
            stats: Stats::with_regions(regions.len()),
            regions,
            restaurants,
            by_id,
            phase,
            streams,
            api,
            in_flight: Semaphore::new(scenario.max_in_flight),
            writes_sent: AtomicU64::new(0),
            write_ids: AtomicU64::new(0),
            retry_until_us: AtomicU64::new(u64::MAX),
            run_tag: format!("{:08x}", rand::random::<u32>()),
            traffic_over: AtomicBool::new(false),
            unsettled: Mutex::new(Vec::new()),
            failures: Mutex::new((0, Vec::new())),
            retry_reasons: Mutex::new(BTreeMap::new()),
            scenario,
        }
    }

    /// Regions mode: restaurants have homes, screens and writes may be
    /// remote.
    pub fn multi_region(&self) -> bool {
        self.regions.len() > 1
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

    /// Counts a reason a write was retried (the first 30 distinct ones;
    /// later ones as `other`).
    pub fn note_retry(&self, what: &str) {
        let mut r = self.retry_reasons.lock().expect("retry lock");
        let key = if r.len() < 30 || r.contains_key(what) {
            what
        } else {
            "other"
        };
        *r.entry(key.to_owned()).or_default() += 1;
    }

    /// Why writes were retried, and how often.
    pub fn retry_reasons(&self) -> BTreeMap<String, u64> {
        self.retry_reasons.lock().expect("retry lock").clone()
    }
}
