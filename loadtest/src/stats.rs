//! Figures gathered while the run goes: latency histograms, counters and a
//! per-second timeline for the plots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::scenario::Transport;

/// A histogram of microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// One second of the run.
pub struct Second {
    pub deliveries: u64,
    pub orders: u64,
    pub writes: u64,
    /// Delivery latency (commit → read) of live events read in it.
    pub latency: Histogram<u64>,
    /// Regions mode: the same, for screens in the restaurant's home region
    /// (`[0]`) and in another region (`[1]`).
    pub locality: Option<[Histogram<u64>; 2]>,
    /// Regions mode: `stale` and `live` signals read in it.
    pub stale: u64,
    pub live: u64,
}

/// Figures of one region (regions mode).
#[derive(Default)]
pub struct RegionStats {
    /// Commit → read of live events at screens in this region, for
    /// restaurants homed here (`[0]`, local) and elsewhere (`[1]`, remote).
    pub locality: [Mutex<Option<Histogram<u64>>>; 2],
    /// Signals read by screens in this region.
    pub stale: AtomicU64,
    pub live: AtomicU64,
    /// Signals about a restaurant homed in this region (the protocol sends
    /// none).
    pub signals_for_local: AtomicU64,
    /// Writes sent through this region's api for restaurants homed
    /// elsewhere (each logical write once).
    pub forwarded: AtomicU64,
    /// Further attempts of those.
    pub forwarded_retries: AtomicU64,
    /// Further attempts of every write sent through this region's api.
    pub retries: AtomicU64,
}

/// Live counters, shared by every task.
pub struct Stats {
    /// The run's clock: `µs` figures count from here.
    pub epoch: Instant,
    epoch_wall_us: u64,
    /// Set after the warm-up: latency is recorded only from then.
    pub measuring: AtomicBool,
    pub delivered: [AtomicU64; 3],
    /// Commit → read, per transport, live events only.
    pub latency: [Mutex<Histogram<u64>>; 3],
    pub open: AtomicI64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub drops: AtomicU64,
    pub server_closes: AtomicU64,
    /// Connection lost (or cut) → established again.
    pub reconnect: Mutex<Histogram<u64>>,
    /// Api command latency.
    pub api: Mutex<Histogram<u64>>,
    pub orders: AtomicU64,
    pub writes_ok: AtomicU64,
    /// Writes answered with an error (nothing committed).
    pub writes_refused: AtomicU64,
    /// Writes without an answer (committed or not: unknown).
    pub writes_lost: AtomicU64,
    /// Server clock ahead of ours by more than 1 ms on an event: latency of
    /// such events is recorded as 0.
    pub clock_skewed: AtomicU64,
    /// Per region; one in a single-region run.
    pub regions: Vec<RegionStats>,
    /// Writes that failed without a certain outcome and whose commit was
    /// then found in the restaurant's event log.
    pub writes_resolved: AtomicU64,
    /// Events of a write that failed without a certain outcome, then was
    /// sent again and committed twice (creations without a key), found in
    /// the log before the screens settled.
    pub extra_commits: AtomicU64,
    timeline: Mutex<Vec<Second>>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats::with_regions(1)
    }

    /// Figures for a run over `regions` regions.
    pub fn with_regions(regions: usize) -> Stats {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_micros() as u64;
        Stats {
            epoch: Instant::now(),
            epoch_wall_us: wall,
            measuring: AtomicBool::new(false),
            delivered: Default::default(),
            latency: [(); 3].map(|()| Mutex::new(histogram())),
            open: AtomicI64::new(0),
            connects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            server_closes: AtomicU64::new(0),
            reconnect: Mutex::new(histogram()),
            api: Mutex::new(histogram()),
            orders: AtomicU64::new(0),
            writes_ok: AtomicU64::new(0),
            writes_refused: AtomicU64::new(0),
            writes_lost: AtomicU64::new(0),
            clock_skewed: AtomicU64::new(0),
            regions: (0..regions.max(1))
                .map(|_| RegionStats::default())
                .collect(),
            writes_resolved: AtomicU64::new(0),
            extra_commits: AtomicU64::new(0),
            timeline: Mutex::new(Vec::new()),
        }
    }

    fn multi_region(&self) -> bool {
        self.regions.len() > 1
    }

    /// µs since the run began.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Wall-clock µs since 1970 of a run time (same clock as the server's
    /// `ts` when both run on one machine).
    pub fn wall_us(&self, run_us: u64) -> u64 {
        self.epoch_wall_us + run_us
    }

    fn with_second<T>(&self, at_us: u64, f: impl FnOnce(&mut Second) -> T) -> T {
        let i = (at_us / 1_000_000) as usize;
        let second = || Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds");
        let multi = self.multi_region();
        let mut t = self.timeline.lock().expect("timeline lock");
        while t.len() <= i {
            t.push(Second {
                deliveries: 0,
                orders: 0,
                writes: 0,
                latency: second(),
                locality: multi.then(|| [second(), second()]),
                stale: 0,
                live: 0,
            });
        }
        f(&mut t[i])
    }

    /// An event read at `read_us`, committed at wall time `ts_us`; `live`
    /// when the screen was connected before it was committed. `region`:
    /// the screen's; `remote`: the restaurant is homed in another.
    pub fn delivered(
        &self,
        transport: Transport,
        read_us: u64,
        ts_us: u64,
        live: bool,
        region: usize,
        remote: bool,
    ) {
        self.delivered[transport as usize].fetch_add(1, Relaxed);
        let latency = if live && self.measuring.load(Relaxed) {
            let now_wall = self.wall_us(read_us);
            if ts_us > now_wall + 1000 {
                self.clock_skewed.fetch_add(1, Relaxed);
            }
            let l = now_wall.saturating_sub(ts_us).max(1);
            self.latency[transport as usize]
                .lock()
                .expect("latency lock")
                .saturating_record(l);
            if self.multi_region() {
                self.regions[region].locality[usize::from(remote)]
                    .lock()
                    .expect("locality lock")
                    .get_or_insert_with(histogram)
                    .saturating_record(l);
            }
            Some(l)
        } else {
            None
        };
        self.with_second(read_us, |s| {
            s.deliveries += 1;
            if let Some(l) = latency {
                s.latency.saturating_record(l);
                if let Some(h) = &mut s.locality {
                    h[usize::from(remote)].saturating_record(l);
                }
            }
        });
    }

    /// A `stale` (or `live`) signal read at a screen in `region` about a
    /// restaurant homed elsewhere (`for_local`: homed in `region`).
    pub fn signal(&self, at_us: u64, region: usize, stale: bool, for_local: bool) {
        let r = &self.regions[region];
        if stale { &r.stale } else { &r.live }.fetch_add(1, Relaxed);
        if for_local {
            r.signals_for_local.fetch_add(1, Relaxed);
        }
        self.with_second(at_us, |s| {
            if stale {
                s.stale += 1;
            } else {
                s.live += 1;
            }
        });
    }

    /// An api write that took `took_us`.
    pub fn wrote(&self, at_us: u64, took_us: u64, order: bool) {
        self.writes_ok.fetch_add(1, Relaxed);
        if order {
            self.orders.fetch_add(1, Relaxed);
        }
        if self.measuring.load(Relaxed) {
            self.api
                .lock()
                .expect("api lock")
                .saturating_record(took_us.max(1));
        }
        self.with_second(at_us, |s| {
            s.writes += 1;
            s.orders += u64::from(order);
        });
    }

    /// A connection (re-)established after being lost for `lost_us`.
    pub fn reconnected(&self, lost_us: u64) {
        self.reconnect
            .lock()
            .expect("reconnect lock")
            .saturating_record(lost_us.max(1));
    }

    /// Live deliveries so far, all transports.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.iter().map(|d| d.load(Relaxed)).sum()
    }

    /// All transports' latency merged.
    pub fn latency_all(&self) -> Histogram<u64> {
        let mut all = histogram();
        for h in &self.latency {
            all.add(&*h.lock().expect("latency lock"))
                .expect("same bounds");
        }
        all
    }

    /// The timeline so far (taken at the end).
    pub fn take_timeline(&self) -> Vec<Second> {
        std::mem::take(&mut *self.timeline.lock().expect("timeline lock"))
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}
