//! The result of a run: every figure (JSON), a summary table, and the
//! verdict against the SLOs.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ctx::{Region, Restaurant};
use crate::ledger::{Book, Viewer};
use crate::procstat::Usage;
use crate::scenario::{Scenario, Transport};
use crate::stats::{Stats, histogram};
use crate::verify::{ClientLog, Verification};

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// A chaos command and how it went.
#[derive(Clone, Debug, Serialize)]
pub struct ExecResult {
    pub at_s: f64,
    pub command: String,
    /// The exit code; `None` when a signal ended it (or it could not start:
    /// then `output` says why).
    pub exit: Option<i32>,
    pub output: String,
}

/// How a chaos command ended, in words: `exit 0`, or `killed by a signal`.
pub fn exit_text(exit: Option<i32>) -> String {
    exit.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}"))
}

/// A memory figure in KiB, or `—` when it was not sampled.
fn kib(v: Option<u64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v} KiB"))
}

/// One second of the timeline.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    pub t: u64,
    pub deliveries: u64,
    pub orders: u64,
    pub writes: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// Regions mode: the delivery p99 at screens in the restaurant's home
    /// region and in another one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_local_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_remote_ms: Option<f64>,
    /// Regions mode: `stale` and `live` signals read.
    #[serde(skip_serializing_if = "is_zero")]
    pub stale: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub live: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One latency, at screens in the restaurant's home region (`local`) and
/// in another region (`remote`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LocalRemote {
    pub local: Latency,
    pub remote: Latency,
}

impl LocalRemote {
    fn of(h: &[Histogram<u64>; 2]) -> LocalRemote {
        LocalRemote {
            local: Latency::of(&h[0]),
            remote: Latency::of(&h[1]),
        }
    }
}

/// One region's figures (regions mode).
#[derive(Clone, Debug, Serialize)]
pub struct RegionReport {
    pub name: String,
    pub apis: Vec<String>,
    pub edges: Vec<String>,
    /// Restaurants whose home it is.
    pub restaurants_homed: usize,
    /// Screens on its edges, besides the chain admin: watching a
    /// restaurant homed here (`local`) or elsewhere (`remote`).
    pub screens: usize,
    pub screens_local: usize,
    pub screens_remote: usize,
    pub chain_admins: usize,
    /// Commit → read, live events, at screens on its edges.
    pub commit_to_read: LocalRemote,
    /// Request start → read, at screens on its edges.
    pub request_to_read: LocalRemote,
    /// Writes sent through its api for restaurants homed elsewhere, and
    /// their further attempts.
    pub writes_forwarded: u64,
    pub forwarded_retries: u64,
    /// Further attempts of every write sent through its api.
    pub write_retries: u64,
    /// Signals read by screens on its edges.
    pub stale_signals: u64,
    pub live_signals: u64,
    /// Of those, about restaurants homed here (the protocol sends none).
    pub signals_for_local: u64,
}

/// The regions section (regions mode).
#[derive(Clone, Debug, Serialize)]
pub struct Regions {
    /// From the last restaurant created until every region knew every
    /// restaurant.
    pub replicated_s: f64,
    pub commit_to_read: LocalRemote,
    pub request_to_read: LocalRemote,
    pub writes_forwarded: u64,
    pub forwarded_retries: u64,
    pub stale_signals: u64,
    pub live_signals: u64,
    pub signals_for_local: u64,
    pub regions: Vec<RegionReport>,
}

/// Counters of connections.
#[derive(Clone, Debug, Serialize)]
pub struct Connections {
    pub screens: usize,
    pub by_transport: BTreeMap<&'static str, usize>,
    /// Time until every screen was live (or the wait gave up).
    pub connect_s: f64,
    pub opened: u64,
    pub failed: u64,
    pub cut_by_chaos: u64,
    pub closed_by_server: u64,
    /// Cut or lost → established again.
    pub reconnect: Latency,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub passed: bool,
    /// Why the run failed, when it did.
    pub verdict: Vec<String>,
    pub scenario: Scenario,
    pub measured_s: f64,
    pub connections: Connections,
    pub orders_created: u64,
    pub orders_per_s: f64,
    pub writes_ok: u64,
    pub writes_refused: u64,
    pub writes_lost: u64,
    /// Further attempts of writes after `503` or no answer (the same
    /// Idempotency-Key), until answered or the settle phase would end.
    pub write_retries: u64,
    /// Writes without a certain outcome whose commit was found in the
    /// restaurant's log, and extra commits of creations sent again.
    pub writes_resolved: u64,
    pub extra_commits: u64,
    /// Why writes were retried (through which region), and how often.
    pub retry_reasons: BTreeMap<String, u64>,
    pub writes_per_s: f64,
    pub api_latency: Latency,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub deliveries_by_transport: BTreeMap<&'static str, u64>,
    /// Commit timestamp of the event → the screen's read, live events.
    pub delivery_latency: BTreeMap<&'static str, Latency>,
    /// Start of the api request that caused the event → the screen's read.
    pub publish_to_read: BTreeMap<&'static str, Latency>,
    /// (percentile, ms) of the commit → read latency, all transports.
    pub distribution: Vec<(f64, f64)>,
    pub clock_skewed_events: u64,
    pub settled_s: f64,
    /// Seconds from the start of the run (timeline `t` = 0) to the start
    /// of traffic, which chaos offsets count from.
    pub traffic_start_s: f64,
    pub verification: Verification,
    /// Regions mode only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Regions>,
    pub processes: Vec<Usage>,
    pub chaos: Vec<ExecResult>,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub timeline: Vec<Point>,
}

pub(crate) struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub stats: &'a Stats,
    pub books: &'a [&'a Book],
    pub logs: &'a [ClientLog],
    pub verification: Verification,
    pub usage: Vec<Usage>,
    pub chaos: Vec<ExecResult>,
    pub failures: (u64, Vec<String>),
    pub traffic_start_us: u64,
    pub measure_from_us: u64,
    pub traffic_end_us: u64,
    pub connect_time: Duration,
    pub settled_in: Duration,
    pub regions: &'a [Region],
    pub restaurants: &'a [Restaurant],
    pub replicated_in: Option<Duration>,
    pub retry_reasons: BTreeMap<String, u64>,
}

/// Request start → read, for events read live after measuring began: per
/// transport, and per region of the screen, local and remote.
fn publish_to_read(inp: &Inputs<'_>) -> ([Histogram<u64>; 3], Vec<[Histogram<u64>; 2]>) {
    let mut out = [(); 3].map(|()| histogram());
    let mut by_region: Vec<[Histogram<u64>; 2]> = inp
        .regions
        .iter()
        .map(|_| [histogram(), histogram()])
        .collect();
    for log in inp.logs {
        let book = inp.books[log.restaurant];
        for r in &log.receipts {
            let Some(known) = book.get(r.seq).filter(|_| !r.foreign) else {
                continue;
            };
            let connected = log
                .connections
                .get(r.conn as usize)
                .copied()
                .unwrap_or(u64::MAX);
            if known.sent_us >= connected && known.sent_us >= inp.measure_from_us {
                let l = r.read_us.saturating_sub(known.sent_us).max(1);
                out[log.transport as usize].saturating_record(l);
                by_region[log.region][usize::from(log.remote)].saturating_record(l);
            }
        }
    }
    (out, by_region)
}

/// Sums local and remote over regions.
fn merged(hs: &[[Histogram<u64>; 2]]) -> [Histogram<u64>; 2] {
    let mut all = [histogram(), histogram()];
    for h in hs {
        for i in 0..2 {
            all[i].add(&h[i]).expect("same bounds");
        }
    }
    all
}

/// The regions section.
fn regions_section(inp: &Inputs<'_>, request_to_read: &[[Histogram<u64>; 2]]) -> Option<Regions> {
    if inp.regions.len() < 2 {
        return None;
    }
    let st = inp.stats;
    let commit: Vec<[Histogram<u64>; 2]> = st
        .regions
        .iter()
        .map(|r| {
            [0, 1].map(|i| {
                r.locality[i]
                    .lock()
                    .expect("locality lock")
                    .clone()
                    .unwrap_or_else(histogram)
            })
        })
        .collect();
    let regions: Vec<RegionReport> = inp
        .regions
        .iter()
        .enumerate()
        .map(|(g, region)| {
            let rs = &st.regions[g];
            // Screens once each (a chain admin has a log per restaurant).
            let mut seen = std::collections::HashSet::new();
            let (mut local, mut remote, mut admins) = (0, 0, 0);
            for log in inp.logs.iter().filter(|l| l.region == g) {
                if !seen.insert(log.id) {
                    continue;
                }
                match (log.viewer, log.remote) {
                    (Viewer::Admin, _) => admins += 1,
                    (_, false) => local += 1,
                    (_, true) => remote += 1,
                }
            }
            RegionReport {
                name: region.name.clone(),
                apis: region.apis.clone(),
                edges: region.edges.to_vec(),
                restaurants_homed: inp.restaurants.iter().filter(|r| r.home == g).count(),
                screens: local + remote,
                screens_local: local,
                screens_remote: remote,
                chain_admins: admins,
                commit_to_read: LocalRemote::of(&commit[g]),
                request_to_read: LocalRemote::of(&request_to_read[g]),
                writes_forwarded: rs.forwarded.load(Relaxed),
                forwarded_retries: rs.forwarded_retries.load(Relaxed),
                write_retries: rs.retries.load(Relaxed),
                stale_signals: rs.stale.load(Relaxed),
                live_signals: rs.live.load(Relaxed),
                signals_for_local: rs.signals_for_local.load(Relaxed),
            }
        })
        .collect();
    let sum = |f: fn(&RegionReport) -> u64| regions.iter().map(f).sum::<u64>();
    Some(Regions {
        replicated_s: inp.replicated_in.unwrap_or_default().as_secs_f64(),
        commit_to_read: LocalRemote::of(&merged(&commit)),
        request_to_read: LocalRemote::of(&merged(request_to_read)),
        writes_forwarded: sum(|r| r.writes_forwarded),
        forwarded_retries: sum(|r| r.forwarded_retries),
        stale_signals: sum(|r| r.stale_signals),
        live_signals: sum(|r| r.live_signals),
        signals_for_local: sum(|r| r.signals_for_local),
        regions,
    })
}

fn by_transport(hs: &[Histogram<u64>; 3]) -> BTreeMap<&'static str, Latency> {
    let mut all = histogram();
    let mut out = BTreeMap::new();
    for t in Transport::ALL {
        let h = &hs[t as usize];
        all.add(h).expect("same bounds");
        if !h.is_empty() {
            out.insert(t.as_str(), Latency::of(h));
        }
    }
    out.insert("all", Latency::of(&all));
    out
}

pub(crate) fn build(inp: Inputs<'_>) -> Report {
    let s = inp.scenario;
    let st = inp.stats;
    let measured_s = (inp.traffic_end_us.saturating_sub(inp.measure_from_us)) as f64 / 1e6;
    let per_s = |n: u64| {
        if measured_s > 0.0 {
            n as f64 / measured_s
        } else {
            0.0
        }
    };
    let latency: [Histogram<u64>; 3] =
        [0, 1, 2].map(|i| st.latency[i].lock().expect("latency lock").clone());
    let all = st.latency_all();
    let distribution = [
        0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
    ]
    .into_iter()
    .filter(|_| !all.is_empty())
    .map(|p| (p, all.value_at_percentile(p) as f64 / 1000.0))
    .collect();
    let timeline: Vec<Point> = st
        .take_timeline()
        .into_iter()
        .enumerate()
        .map(|(t, sec)| {
            let at = |h: &Histogram<u64>, p: f64| {
                if h.is_empty() {
                    0.0
                } else {
                    h.value_at_quantile(p) as f64 / 1000.0
                }
            };
            let q = |p: f64| at(&sec.latency, p);
            Point {
                t: t as u64,
                deliveries: sec.deliveries,
                orders: sec.orders,
                writes: sec.writes,
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                p999_ms: q(0.999),
                p99_local_ms: sec.locality.as_ref().map(|h| at(&h[0], 0.99)),
                p99_remote_ms: sec.locality.as_ref().map(|h| at(&h[1], 0.99)),
                stale: sec.stale,
                live: sec.live,
            }
        })
        .collect();
    // Deliveries and writes within the measured window.
    let window = |f: fn(&Point) -> u64| {
        let (from, to) = (
            inp.measure_from_us / 1_000_000,
            inp.traffic_end_us / 1_000_000,
        );
        timeline
            .iter()
            .filter(|p| p.t >= from && p.t < to)
            .map(f)
            .sum::<u64>()
    };
    // Screens once each (a chain admin has a log per restaurant).
    let mut transports = BTreeMap::new();
    let mut screens = std::collections::HashSet::new();
    for log in inp.logs {
        if screens.insert(log.id) {
            *transports.entry(log.transport.as_str()).or_insert(0) += 1;
        }
    }
    let (request_to_read, request_to_read_by_region) = publish_to_read(&inp);
    let regions = regions_section(&inp, &request_to_read_by_region);
    let delivered: BTreeMap<&'static str, u64> = Transport::ALL
        .into_iter()
        .map(|t| (t.as_str(), st.delivered[t as usize].load(Relaxed)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let delivery_latency = by_transport(&latency);
    let mut report = Report {
        passed: true,
        verdict: Vec::new(),
        scenario: s.clone(),
        measured_s,
        connections: Connections {
            screens: screens.len(),
            by_transport: transports,
            connect_s: inp.connect_time.as_secs_f64(),
            opened: st.connects.load(Relaxed),
            failed: st.connect_failures.load(Relaxed),
            cut_by_chaos: st.drops.load(Relaxed),
            closed_by_server: st.server_closes.load(Relaxed),
            reconnect: Latency::of(&st.reconnect.lock().expect("reconnect lock")),
        },
        orders_created: st.orders.load(Relaxed),
        orders_per_s: per_s(window(|p| p.orders)),
        writes_ok: st.writes_ok.load(Relaxed),
        writes_refused: st.writes_refused.load(Relaxed),
        writes_lost: st.writes_lost.load(Relaxed),
        write_retries: st.regions.iter().map(|r| r.retries.load(Relaxed)).sum(),
        writes_resolved: st.writes_resolved.load(Relaxed),
        extra_commits: st.extra_commits.load(Relaxed),
        retry_reasons: inp.retry_reasons,
        writes_per_s: per_s(window(|p| p.writes)),
        api_latency: Latency::of(&st.api.lock().expect("api lock")),
        deliveries: st.delivered_total(),
        deliveries_per_s: per_s(window(|p| p.deliveries)),
        deliveries_by_transport: delivered,
        delivery_latency,
        publish_to_read: by_transport(&request_to_read),
        distribution,
        clock_skewed_events: st.clock_skewed.load(Relaxed),
        settled_s: inp.settled_in.as_secs_f64(),
        traffic_start_s: inp.traffic_start_us as f64 / 1e6,
        verification: inp.verification,
        regions,
        processes: inp.usage,
        chaos: inp.chaos,
        errors: inp.failures.0,
        first_errors: inp.failures.1,
        timeline,
    };
    judge(&mut report);
    report
}

/// The verdict: violations and SLOs.
fn judge(r: &mut Report) {
    let v = &r.verification.violations;
    let lost = v.missing;
    if lost > r.scenario.slo_lost {
        r.verdict.push(format!(
            "{lost} events lost (allowed: {})",
            r.scenario.slo_lost
        ));
    }
    let others = v.total() - v.missing;
    if others > 0 {
        r.verdict
            .push(format!("{others} delivery violations besides loss"));
    }
    if let Some(slo) = r.scenario.slo_p99_ms {
        let p99 = r.delivery_latency.get("all").map_or(0.0, |l| l.p99_ms);
        if p99 > slo {
            r.verdict.push(format!(
                "delivery p99 {p99:.2} ms is above the SLO {slo} ms"
            ));
        }
    }
    if r.verification.expected == 0 && r.scenario.rate > 0.0 {
        r.verdict
            .push("no event was due to any screen: nothing was verified".into());
    }
    r.passed = r.verdict.is_empty();
}

/// The summary table printed at the end of a run.
pub fn summary(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let v = &r.verification;
    let _ = writeln!(o, "\nOrdercast load test — {:.0} s measured", r.measured_s);
    let c = &r.connections;
    let _ = writeln!(
        o,
        "  screens        {} ({}), live in {:.2} s; {} connections opened, {} failed, {} cut by chaos, {} closed by server",
        c.screens,
        c.by_transport
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        c.connect_s,
        c.opened,
        c.failed,
        c.cut_by_chaos,
        c.closed_by_server
    );
    let _ = writeln!(
        o,
        "  api            {} orders ({:.1}/s), {} writes ({:.1}/s), {} refused, {} lost",
        r.orders_created,
        r.orders_per_s,
        r.writes_ok,
        r.writes_per_s,
        r.writes_refused,
        r.writes_lost
    );
    if r.write_retries > 0 || r.regions.is_some() {
        let forwarded = r.regions.as_ref().map_or(String::new(), |g| {
            format!(
                "{} writes forwarded ({} retries of them); ",
                g.writes_forwarded, g.forwarded_retries
            )
        });
        let _ = writeln!(
            o,
            "  retries        {forwarded}{} retries after 503 or no answer, {} unknown outcomes found committed in the log, {} extra commits",
            r.write_retries, r.writes_resolved, r.extra_commits
        );
    }
    let _ = writeln!(
        o,
        "  deliveries     {} ({:.0}/s)",
        r.deliveries, r.deliveries_per_s
    );
    let _ = writeln!(
        o,
        "\n  latency (ms)             count       p50       p90       p99     p99.9       max"
    );
    let mut row = |name: &str, l: &Latency| {
        let _ = writeln!(
            o,
            "  {name:<22} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
        );
    };
    for (t, l) in &r.delivery_latency {
        row(&format!("commit→read {t}"), l);
    }
    if let Some(g) = &r.regions {
        row("commit→read local", &g.commit_to_read.local);
        row("commit→read remote", &g.commit_to_read.remote);
    }
    for (t, l) in &r.publish_to_read {
        row(&format!("request→read {t}"), l);
    }
    if let Some(g) = &r.regions {
        row("request→read local", &g.request_to_read.local);
        row("request→read remote", &g.request_to_read.remote);
    }
    row("api command", &r.api_latency);
    row("reconnect", &r.connections.reconnect);
    if let Some(g) = &r.regions {
        let _ = writeln!(
            o,
            "\n  regions        {} regions; every restaurant known in every region {:.2} s after the last was created; signals: {} stale, {} live ({} about a local restaurant)",
            g.regions.len(),
            g.replicated_s,
            g.stale_signals,
            g.live_signals,
            g.signals_for_local
        );
        let ms = |l: &Latency| {
            format!(
                "{:.0}/{:.0}/{:.0}/{:.0}",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            )
        };
        for x in &g.regions {
            let _ = writeln!(
                o,
                "    {:<12} {} restaurants homed, {} screens ({} local, {} remote) + {} chain admin; commit→read p50/p90/p99/max ms local {} remote {}; {} writes forwarded ({} retries); {} stale, {} live",
                x.name,
                x.restaurants_homed,
                x.screens,
                x.screens_local,
                x.screens_remote,
                x.chain_admins,
                ms(&x.commit_to_read.local),
                ms(&x.commit_to_read.remote),
                x.writes_forwarded,
                x.forwarded_retries,
                x.stale_signals,
                x.live_signals
            );
        }
    }
    for p in &r.processes {
        let _ = writeln!(
            o,
            "\n  process {}: {:.1} CPU s, peak RSS {} KiB (before screens {}, all connected {}{}), {} restarts",
            p.name,
            p.cpu_s,
            p.rss_peak_kib,
            kib(p.rss_before_kib),
            kib(p.rss_connected_kib),
            // Read only when the run lingered (--linger).
            match p.rss_after_kib {
                Some(after) => format!(
                    ", {after} KiB {:.0} s after",
                    r.scenario.linger.as_secs_f64()
                ),
                None => String::new(),
            },
            p.restarts
        );
        if let (Some(cpu), Some(per)) = (p.cpu_measured_s, p.cpu_us_per_delivery) {
            let _ = writeln!(
                o,
                "    while measuring: {cpu:.2} CPU s, {per:.2} CPU µs per event read"
            );
        }
    }
    for x in &r.chaos {
        let (at, exit) = (x.at_s, exit_text(x.exit));
        let _ = writeln!(o, "  chaos at {at:.0}s: {} → {exit}", x.command);
    }
    let b = &v.violations;
    let _ = writeln!(
        o,
        "\n  verification   {} events due, {} read, {} unverified; violations: {} missing, {} duplicate, {} reordered, {} foreign restaurant, {} foreign audience, {} altered, {} before cursor, {} unexpected",
        v.expected,
        v.received,
        v.unverified,
        b.missing,
        b.duplicate,
        b.reordered,
        b.foreign_restaurant,
        b.foreign_audience,
        b.altered,
        b.before_cursor,
        b.unexpected
    );
    for e in &b.examples {
        let _ = writeln!(o, "    {e}");
    }
    if r.errors > 0 {
        let _ = writeln!(o, "  errors         {} (first ones below)", r.errors);
        for e in &r.first_errors {
            let _ = writeln!(o, "    {e}");
        }
    }
    if !r.retry_reasons.is_empty() {
        let _ = writeln!(o, "  retries after");
        let mut reasons: Vec<_> = r.retry_reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (why, n) in reasons {
            let _ = writeln!(o, "    {n:>7}  {why}");
        }
    }
    let _ = writeln!(
        o,
        "\n  {}",
        if r.passed {
            "PASSED".to_owned()
        } else {
            format!("FAILED: {}", r.verdict.join("; "))
        }
    );
    o
}
