//! The HTML report: one self-contained page (inline SVG, no scripts, no
//! network) with the summary and the plots.

use std::fmt::Write;

use crate::report::{Point, Report, summary};

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
// Room for half of the widest x tick label ("p99.99") centred on the last
// tick.
const RIGHT: f64 = 28.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;
/// Advance of one glyph of the 11 px tick font, rounded up (system-ui
/// digits are about 6.1 px) so an estimated box is never narrower than the
/// drawn text.
const CHAR_W: f64 = 6.8;
/// Baseline distance between two rows of marker labels.
const LABEL_ROW: f64 = 13.0;
/// Least horizontal space between two marker labels in one row.
const LABEL_GAP: f64 = 4.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// The x axis of a chart: its domain, its ticks and how a tick reads.
struct Axis<'a> {
    from: f64,
    to: f64,
    ticks: Vec<f64>,
    label: &'a dyn Fn(f64) -> String,
    /// Two points further apart than this are not joined: no data between
    /// them (a second without a figure).
    gap: f64,
}

impl Axis<'_> {
    /// The SVG x of `x`.
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.from) / (self.to - self.from).max(1e-9) * (W - LEFT - RIGHT)
    }
}

/// A "nice" step for about five ticks over `0..max`.
fn step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The width `s` takes in the tick font, at most.
fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * CHAR_W
}

/// A line chart over `axis`; `marks` are vertical lines (x, label).
fn chart(
    title: &str,
    y_unit: &str,
    series: &[Series<'_>],
    axis: &Axis<'_>,
    marks: &[(f64, String)],
) -> String {
    let mut o = format!(
        r#"<figure><svg viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = escape(title)
    );
    if series.iter().all(|s| s.points.is_empty()) {
        o.push_str(r#"<text x="300" y="130">no data</text></svg></figure>"#);
        return o;
    }
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let ystep = step(ymax.max(1e-9));
    let ytop = (ymax / ystep).ceil().max(1.0) * ystep;
    let py = |y: f64| H - BOTTOM - y / ytop * (H - TOP - BOTTOM);
    y_grid(&mut o, ytop, ystep, &py);
    x_ticks(&mut o, axis);
    let _ = write!(
        o,
        r#"<text x="12" y="{m}" class="tick" transform="rotate(-90 12 {m})" text-anchor="middle">{y_unit}</text>"#,
        m = H / 2.0
    );
    markers(&mut o, axis, marks);
    lines(&mut o, series, axis, &py);
    o.push_str("</svg></figure>");
    o
}

fn y_grid(o: &mut String, ytop: f64, ystep: f64, py: &dyn Fn(f64) -> f64) {
    let mut y = 0.0;
    while y <= ytop + ystep / 2.0 {
        let _ = write!(
            o,
            r#"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            format_num(y),
            yy = py(y)
        );
        y += ystep;
    }
}

fn x_ticks(o: &mut String, axis: &Axis<'_>) {
    for &x in &axis.ticks {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            axis.px(x),
            H - BOTTOM + 16.0,
            escape(&(axis.label)(x))
        );
    }
}

/// Where each marker label goes (left edge, baseline), given the x of each
/// marker line: right of its line, or left of it where it would leave the
/// chart, in the first row it clears every label already placed in.
fn place_labels(marks: &[(f64, &str)]) -> Vec<(f64, f64)> {
    // The right end of the labels in each row so far.
    let mut rows: Vec<f64> = Vec::new();
    let mut placed = Vec::with_capacity(marks.len());
    for &(x, text) in marks {
        let width = text_width(text);
        let left = if x + 3.0 + width > W - 2.0 {
            (x - 3.0 - width).max(2.0)
        } else {
            x + 3.0
        };
        let row = rows
            .iter()
            .position(|&end| end + LABEL_GAP <= left)
            .unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(left + width);
        }
        rows[row] = rows[row].max(left + width);
        placed.push((left, TOP + 10.0 + row as f64 * LABEL_ROW));
    }
    placed
}

fn markers(o: &mut String, axis: &Axis<'_>, marks: &[(f64, String)]) {
    let at: Vec<(f64, &str)> = marks.iter().map(|(x, l)| (axis.px(*x), &**l)).collect();
    for (&(p, label), (left, y)) in at.iter().zip(place_labels(&at)) {
        let _ = write!(
            o,
            r#"<line x1="{p:.1}" x2="{p:.1}" y1="{TOP}" y2="{}" class="mark"/><text x="{left:.1}" y="{y}" class="tick">{}</text>"#,
            H - BOTTOM,
            escape(label),
        );
    }
}

fn lines(o: &mut String, series: &[Series<'_>], axis: &Axis<'_>, py: &dyn Fn(f64) -> f64) {
    for (i, s) in series.iter().enumerate() {
        let lx = LEFT + i as f64 * 130.0;
        // One polyline per run of points without a gap.
        let mut runs: Vec<Vec<String>> = Vec::new();
        let mut last: Option<f64> = None;
        for &(x, y) in &s.points {
            if last.is_none_or(|l| x - l > axis.gap) {
                runs.push(Vec::new());
            }
            last = Some(x);
            if let Some(run) = runs.last_mut() {
                run.push(format!("{:.1},{:.1}", axis.px(x), py(y)));
            }
        }
        for run in runs {
            let _ = write!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8"/>"#,
                run.join(" "),
                s.color,
            );
        }
        let _ = write!(
            o,
            r#"<rect x="{lx}" y="{}" width="10" height="3" fill="{c}"/><text x="{}" y="{}" class="tick">{}</text>"#,
            H - 10.0,
            lx + 14.0,
            H - 6.0,
            escape(s.name),
            c = s.color,
        );
    }
}

fn format_num(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// (t, f) for every second of the timeline; `measured_only` keeps the
/// seconds with a latency figure.
fn per_second(r: &Report, f: fn(&Point) -> f64, measured_only: bool) -> Vec<(f64, f64)> {
    r.timeline
        .iter()
        .filter(|p| !measured_only || p.p50_ms > 0.0)
        .map(|p| (p.t as f64, f(p)))
        .collect()
}

/// A vertical line per chaos command, at its time on the timeline,
/// labelled with its first words after the script that runs them
/// (`scripts/cluster.sh kill-edge 1` → `kill-edge 1`).
fn chaos_marks(r: &Report, last: f64) -> Vec<(f64, String)> {
    r.chaos
        .iter()
        .map(|c| {
            let mut words = c.command.split_whitespace().peekable();
            while words
                .next_if(|w| matches!(*w, "sh" | "bash") || w.ends_with(".sh"))
                .is_some()
            {}
            let words: Vec<&str> = words.take(3).collect();
            // Chaos offsets count from the start of traffic.
            ((r.traffic_start_s + c.at_s).min(last), words.join(" "))
        })
        .collect()
}

fn latency_over_time(r: &Report, time: &Axis<'_>, marks: &[(f64, String)]) -> String {
    let series = |name, color, f| Series {
        name,
        color,
        points: per_second(r, f, true),
    };
    chart(
        "Delivery latency over time (commit → read, live events)",
        "ms",
        &[
            series("p50", "#2b8a3e", |p| p.p50_ms),
            series("p99", "#e67700", |p| p.p99_ms),
            series("p99.9", "#c92a2a", |p| p.p999_ms),
        ],
        time,
        marks,
    )
}

/// The percentile distribution on the usual "nines" axis:
/// x = log10(1/(1-q)).
fn distribution(r: &Report) -> String {
    let nines = |pct: f64| (1.0 / (1.0 - pct / 100.0)).log10();
    let points: Vec<(f64, f64)> = r
        .distribution
        .iter()
        .filter(|(p, _)| *p < 100.0)
        .map(|&(p, ms)| (nines(p), ms))
        .collect();
    let label = |x: f64| {
        let q = format!("{:.2}", 100.0 * (1.0 - 10f64.powf(-x)));
        format!("p{}", q.trim_end_matches('0').trim_end_matches('.'))
    };
    let axis = Axis {
        from: 0.0,
        to: points.iter().map(|p| p.0).fold(nines(99.99), f64::max),
        ticks: [0.0, 90.0, 99.0, 99.9, 99.99].map(nines).to_vec(),
        label: &label,
        gap: f64::INFINITY,
    };
    let series = Series {
        name: "latency",
        color: "#1c7ed6",
        points,
    };
    let title = "Delivery latency distribution (all transports)";
    chart(title, "ms", &[series], &axis, &[])
}

/// Regions mode: the delivery p99 per second at screens in the
/// restaurant's home region and in another one.
fn locality_over_time(r: &Report, time: &Axis<'_>, marks: &[(f64, String)]) -> String {
    let series = |name, color, f: fn(&Point) -> Option<f64>| Series {
        name,
        color,
        points: r
            .timeline
            .iter()
            .filter_map(|p| f(p).filter(|v| *v > 0.0).map(|v| (p.t as f64, v)))
            .collect(),
    };
    chart(
        "Delivery p99 over time, local and remote screens (commit → read)",
        "ms",
        &[
            series("local p99", "#2b8a3e", |p| p.p99_local_ms),
            series("remote p99", "#c92a2a", |p| p.p99_remote_ms),
        ],
        time,
        marks,
    )
}

/// Regions mode: `stale` and `live` signals per second.
fn signals(r: &Report, time: &Axis<'_>, marks: &[(f64, String)]) -> String {
    let series = [
        Series {
            name: "stale/s",
            color: "#e67700",
            points: per_second(r, |p| p.stale as f64, false),
        },
        Series {
            name: "live/s",
            color: "#1c7ed6",
            points: per_second(r, |p| p.live as f64, false),
        },
    ];
    chart(
        "Stale and live signals per second",
        "per s",
        &series,
        time,
        marks,
    )
}

/// Regions mode: a table of the regions section.
fn regions_table(r: &Report) -> String {
    let Some(g) = &r.regions else {
        return String::new();
    };
    let ms = |l: &crate::report::Latency| {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
        )
    };
    let mut o = String::from(
        "<h2>Regions</h2>\n<table><tr><th>region</th><th>restaurants homed</th><th>screens (local + remote)</th>\
         <th>commit → read, local<br>p50 / p90 / p99 / max ms</th><th>commit → read, remote<br>p50 / p90 / p99 / max ms</th>\
         <th>request → read, local</th><th>request → read, remote</th>\
         <th>writes forwarded (retries)</th><th>stale / live signals</th></tr>\n",
    );
    let mut row = |name: &str,
                   homed: String,
                   screens: String,
                   c: &crate::report::LocalRemote,
                   q: &crate::report::LocalRemote,
                   fwd: String,
                   sig: String| {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{homed}</td><td>{screens}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{fwd}</td><td>{sig}</td></tr>",
            escape(name),
            ms(&c.local),
            ms(&c.remote),
            ms(&q.local),
            ms(&q.remote),
        );
    };
    for x in &g.regions {
        row(
            &x.name,
            x.restaurants_homed.to_string(),
            format!(
                "{} + {} + {} chain admin",
                x.screens_local, x.screens_remote, x.chain_admins
            ),
            &x.commit_to_read,
            &x.request_to_read,
            format!("{} ({})", x.writes_forwarded, x.forwarded_retries),
            format!("{} / {}", x.stale_signals, x.live_signals),
        );
    }
    row(
        "all",
        g.regions
            .iter()
            .map(|x| x.restaurants_homed)
            .sum::<usize>()
            .to_string(),
        String::new(),
        &g.commit_to_read,
        &g.request_to_read,
        format!("{} ({})", g.writes_forwarded, g.forwarded_retries),
        format!("{} / {}", g.stale_signals, g.live_signals),
    );
    o.push_str("</table>\n");
    o
}

fn deliveries(r: &Report, time: &Axis<'_>, marks: &[(f64, String)]) -> String {
    let series = Series {
        name: "deliveries/s",
        color: "#1c7ed6",
        points: per_second(r, |p| p.deliveries as f64, false),
    };
    chart("Deliveries per second", "events/s", &[series], time, marks)
}

fn writes(r: &Report, time: &Axis<'_>, marks: &[(f64, String)]) -> String {
    let series = [
        Series {
            name: "writes/s",
            color: "#862e9c",
            points: per_second(r, |p| p.writes as f64, false),
        },
        Series {
            name: "orders/s",
            color: "#2b8a3e",
            points: per_second(r, |p| p.orders as f64, false),
        },
    ];
    let title = "Api writes and new orders per second";
    chart(title, "per s", &series, time, marks)
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let last = r.timeline.last().map_or(0.0, |p| p.t as f64).max(1.0);
    let s = step(last);
    let secs = |x: f64| format!("{x:.0} s");
    // Every time chart counts from the start of the run (timeline t = 0)
    // to its last second, so one moment sits at one x in all of them.
    let time = Axis {
        from: 0.0,
        to: last,
        ticks: (0..=(last / s) as usize).map(|i| i as f64 * s).collect(),
        label: &secs,
        gap: 1.5,
    };
    let marks = chaos_marks(r, last);
    let mut charts = vec![latency_over_time(r, &time, &marks)];
    if r.regions.is_some() {
        charts.push(locality_over_time(r, &time, &marks));
        charts.push(signals(r, &time, &marks));
    }
    charts.extend([
        distribution(r),
        deliveries(r, &time, &marks),
        writes(r, &time, &marks),
    ]);
    charts.push(regions_table(r));
    page(r, &charts.join("\n"))
}

fn page(r: &Report, charts: &str) -> String {
    let verdict = if r.passed {
        r#"<p class="pass">PASSED — every screen got exactly the events it was entitled to</p>"#
            .to_owned()
    } else {
        format!(
            r#"<p class="fail">FAILED — {}</p>"#,
            escape(&r.verdict.join("; "))
        )
    };
    let scenario = serde_json::to_string_pretty(&r.scenario).unwrap_or_default();
    // Summary lines are longer than the page is wide: they wrap rather
    // than scroll.
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ordercast load test</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 800px; color: #212529; }}
h1 {{ font-size: 22px; }} pre {{ background: #f8f9fa; padding: 12px; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }}
figure {{ margin: 18px 0; }} svg {{ width: 100%; background: #fff; border: 1px solid #dee2e6; }}
.title {{ font-weight: 600; font-size: 13px; }} .tick {{ font-size: 11px; fill: #495057; }}
.grid {{ stroke: #e9ecef; }} .mark {{ stroke: #868e96; stroke-dasharray: 4 3; }}
.pass {{ color: #2b8a3e; font-weight: 600; }} .fail {{ color: #c92a2a; font-weight: 600; }}
table {{ border-collapse: collapse; font-size: 12px; }} th, td {{ border: 1px solid #dee2e6; padding: 4px 6px; text-align: right; }}
th {{ background: #f8f9fa; }} td:first-child {{ text-align: left; }}
</style></head><body>
<h1>Ordercast load test</h1>
{verdict}
{charts}
<h2>Summary</h2>
<pre>{summary}</pre>
<h2>Scenario</h2>
<pre>{scenario}</pre>
</body></html>
"#,
        summary = escape(&summary(r)),
        scenario = escape(&scenario),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(step(10.0), 2.0);
        assert_eq!(step(7.3), 2.0);
        assert_eq!(step(0.9), 0.2);
        assert_eq!(step(1200.0), 250.0);
    }

    #[test]
    fn a_chart_draws_every_series() {
        let axis = Axis {
            from: 0.0,
            to: 1.0,
            ticks: vec![0.0, 1.0],
            label: &|x| format!("{x}"),
            gap: f64::INFINITY,
        };
        let svg = chart(
            "t <1>",
            "ms",
            &[
                Series {
                    name: "a",
                    color: "#000",
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Series {
                    name: "b",
                    color: "#111",
                    points: vec![(0.0, 0.5)],
                },
            ],
            &axis,
            &[(0.5, "kill".into())],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        let gappy = Axis {
            ticks: axis.ticks.clone(),
            gap: 0.4,
            ..axis
        };
        let gapped = chart(
            "gaps",
            "ms",
            &[Series {
                name: "a",
                color: "#000",
                points: vec![(0.0, 1.0), (0.2, 1.0), (0.8, 2.0), (1.0, 2.0)],
            }],
            &gappy,
            &[],
        );
        assert_eq!(
            gapped.matches("<polyline").count(),
            2,
            "no line across the gap"
        );
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains(">kill<"));
        assert!(chart("e", "ms", &[], &axis, &[]).contains("no data"));
    }

    /// A report of an 80 s run: screens live by 8 s, traffic (and the
    /// chaos clock) from 8 s, delivery latency measured from 10 s.
    fn report_with_chaos(at_s: &[f64]) -> Report {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            scenario: crate::scenario::Scenario,
        }
        let scenario = <Flags as clap::Parser>::parse_from(["t", "--api=a", "--edge=e"]).scenario;
        let timeline = (0..=80)
            .map(|t| crate::report::Point {
                t,
                deliveries: 50 * u64::from(t >= 8),
                orders: 5 * u64::from(t >= 8),
                writes: 30 * u64::from(t >= 8),
                p50_ms: if t >= 10 { 2.0 } else { 0.0 },
                p99_ms: if t >= 10 { 9.0 } else { 0.0 },
                p999_ms: if t >= 10 { 14.0 } else { 0.0 },
                ..Default::default()
            })
            .collect();
        let chaos = at_s
            .iter()
            .enumerate()
            .map(|(i, &at_s)| crate::report::ExecResult {
                at_s,
                command: format!("scripts/cluster.sh kill-edge {i}"),
                exit: Some(0),
                output: String::new(),
            })
            .collect();
        let distribution = [(0.0, 1.0), (50.0, 2.0), (90.0, 5.0), (99.0, 9.0)]
            .into_iter()
            .chain([(99.9, 14.0), (99.99, 20.0), (100.0, 25.0)])
            .collect();
        let mut edge = crate::procstat::Usage::default();
        (edge.name, edge.rss_before_kib) = ("edge1".into(), Some(14084));
        Report {
            passed: true,
            verdict: Vec::new(),
            scenario,
            measured_s: 60.0,
            connections: crate::report::Connections {
                screens: 10,
                by_transport: std::collections::BTreeMap::new(),
                connect_s: 8.0,
                opened: 10,
                failed: 0,
                cut_by_chaos: 0,
                closed_by_server: 0,
                reconnect: crate::report::Latency::default(),
            },
            orders_created: 300,
            orders_per_s: 5.0,
            writes_ok: 1800,
            writes_refused: 0,
            writes_lost: 0,
            write_retries: 0,
            writes_resolved: 0,
            extra_commits: 0,
            retry_reasons: std::collections::BTreeMap::new(),
            writes_per_s: 30.0,
            api_latency: crate::report::Latency::default(),
            deliveries: 3000,
            deliveries_per_s: 50.0,
            deliveries_by_transport: std::collections::BTreeMap::new(),
            delivery_latency: std::collections::BTreeMap::new(),
            publish_to_read: std::collections::BTreeMap::new(),
            distribution,
            clock_skewed_events: 0,
            settled_s: 8.0,
            traffic_start_s: 8.0,
            verification: crate::verify::Verification::default(),
            regions: None,
            processes: vec![edge],
            chaos,
            errors: 0,
            first_errors: Vec::new(),
            timeline,
        }
    }

    /// The value of attribute `name` in the tag that starts `tag`.
    fn attr(tag: &str, name: &str) -> f64 {
        let from = tag.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        let len = tag[from..].find('"').expect("closing quote");
        tag[from..from + len].parse().expect("a number")
    }

    /// Boxes (left, right, baseline) of the labels that follow marker lines.
    fn marker_label_boxes(svg: &str) -> Vec<(f64, f64, f64)> {
        svg.split(r#"class="mark"/>"#)
            .skip(1)
            .map(|after| {
                let tag = &after[..after.find('>').expect("text tag")];
                let text = &after[tag.len() + 1..after.find("</text>").expect("text end")];
                let width = text_width(text);
                let x = attr(tag, "x");
                let left = if tag.contains(r#"text-anchor="end""#) {
                    x - width
                } else {
                    x
                };
                (left, left + width, attr(tag, "y"))
            })
            .collect()
    }

    /// The x of the tick labelled `label`, in one chart.
    fn tick_x(svg: &str, label: &str) -> f64 {
        let end = svg.find(&format!(">{label}</text>")).expect(label);
        let tag = &svg[svg[..end].rfind("<text").expect("text tag")..end];
        attr(tag, "x")
    }

    #[test]
    fn chaos_labels_do_not_overlap_and_time_charts_share_their_origin() {
        let page = render(&report_with_chaos(&[20.0, 30.0, 45.0, 47.0]));
        let charts: Vec<&str> = page.split("<figure>").skip(1).collect();
        let timed: Vec<&str> = charts
            .iter()
            .copied()
            .filter(|c| c.contains(">0 s<"))
            .collect();
        assert_eq!(timed.len(), 3, "three time charts");
        for chart in &timed {
            let boxes = marker_label_boxes(chart);
            assert_eq!(boxes.len(), 4, "a label per chaos command");
            for (i, a) in boxes.iter().enumerate() {
                assert!(a.0 >= 0.0 && a.1 <= W, "label {a:?} inside the chart");
                for b in &boxes[i + 1..] {
                    let apart = a.1 <= b.0 || b.1 <= a.0 || (a.2 - b.2).abs() >= LABEL_ROW;
                    assert!(apart, "labels {a:?} and {b:?} overlap");
                }
            }
        }
        let origin = tick_x(timed[0], "0 s");
        let marks = |c: &str| -> Vec<f64> {
            c.split(r#"<line x1=""#)
                .skip(1)
                .filter(|l| l.contains(r#"class="mark""#))
                .map(|l| l[..l.find('"').unwrap()].parse().unwrap())
                .collect()
        };
        for chart in &timed {
            assert_eq!(
                tick_x(chart, "0 s"),
                origin,
                "t = 0 at one x in every time chart"
            );
            assert_eq!(
                tick_x(chart, "80 s"),
                tick_x(timed[0], "80 s"),
                "one x scale"
            );
            assert_eq!(marks(chart), marks(timed[0]), "chaos lines at one x");
        }
        let latency = timed
            .iter()
            .find(|c| c.contains("latency over time"))
            .unwrap();
        let points = &latency[latency.find(r#"points=""#).unwrap() + 8..];
        let first_x: f64 = points[..points.find(',').unwrap()].parse().unwrap();
        assert!(
            first_x > origin,
            "the first latency point (t = 10 s) is right of t = 0"
        );
        let summary = &page[page.find("<h2>Summary").unwrap()..];
        assert!(summary.contains("(before screens 14084 KiB, all connected —)"));
        assert!(summary.contains("kill-edge 0 → exit 0") && !summary.contains("Some("));
        let distribution = charts.iter().find(|c| c.contains("distribution")).unwrap();
        let last = tick_x(distribution, "p99.99");
        assert!(
            last + text_width("p99.99") / 2.0 <= W,
            "the last nines label fits"
        );
    }
}
