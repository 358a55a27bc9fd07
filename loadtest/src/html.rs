//! The HTML report: one self-contained page (inline SVG, no scripts, no
//! network) with the summary and the plots.

use std::fmt::Write;

use crate::report::{Report, summary};

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
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

/// A line chart; `x_label_of` formats x ticks; `marks` are vertical lines
/// (x, label).
fn chart(
    title: &str,
    y_unit: &str,
    series: &[Series<'_>],
    x_label_of: &dyn Fn(f64) -> String,
    x_ticks: &[f64],
    marks: &[(f64, String)],
) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let ymax = ys.fold(0.0, f64::max);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<figure><svg viewBox="0 0 {W} {H}" role="img" aria-label="{t}"><text x="{LEFT}" y="18" class="title">{t}</text>"#,
        t = escape(title)
    );
    if x0 > x1 {
        o.push_str(r#"<text x="300" y="130">no data</text></svg></figure>"#);
        return o;
    }
    let span = (x1 - x0).max(1e-9);
    let ystep = step(ymax.max(1e-9));
    let ytop = (ymax / ystep).ceil().max(1.0) * ystep;
    let px = |x: f64| LEFT + (x - x0) / span * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / ytop * (H - TOP - BOTTOM);
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
    for &x in x_ticks {
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            px(x),
            H - BOTTOM + 16.0,
            escape(&x_label_of(x))
        );
    }
    let _ = write!(
        o,
        r#"<text x="12" y="{}" class="tick" transform="rotate(-90 12 {})" text-anchor="middle">{y_unit}</text>"#,
        H / 2.0,
        H / 2.0
    );
    for (x, label) in marks {
        let _ = write!(
            o,
            r#"<line x1="{p:.1}" x2="{p:.1}" y1="{TOP}" y2="{}" class="mark"/><text x="{:.1}" y="{}" class="tick">{}</text>"#,
            H - BOTTOM,
            px(*x) + 3.0,
            TOP + 10.0,
            escape(label),
            p = px(*x)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let lx = LEFT + i as f64 * 130.0;
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="1.8"/><rect x="{lx}" y="{}" width="10" height="3" fill="{c}"/><text x="{}" y="{}" class="tick">{}</text>"#,
            pts.join(" "),
            H - 10.0,
            lx + 14.0,
            H - 6.0,
            escape(s.name),
            c = s.color,
        );
    }
    o.push_str("</svg></figure>");
    o
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

/// The whole page.
pub fn render(r: &Report) -> String {
    let t = &r.timeline;
    let secs = |f: fn(&crate::report::Point) -> f64| -> Vec<(f64, f64)> {
        t.iter().map(|p| (p.t as f64, f(p))).collect()
    };
    let measured: Vec<&crate::report::Point> = t.iter().filter(|p| p.p50_ms > 0.0).collect();
    let lat = |f: fn(&crate::report::Point) -> f64| -> Vec<(f64, f64)> {
        measured.iter().map(|p| (p.t as f64, f(p))).collect()
    };
    let last = t.last().map_or(1.0, |p| p.t as f64);
    let ticks: Vec<f64> = {
        let s = step(last.max(1.0));
        (0..=(last / s) as usize).map(|i| i as f64 * s).collect()
    };
    let secs_label = |x: f64| format!("{x:.0} s");
    // Chaos commands run at offsets from the start of traffic; the
    // timeline counts from the start of the run.
    let traffic_start =
        t.len() as f64 - (r.measured_s + r.scenario.warmup.as_secs_f64() + r.settled_s);
    let marks: Vec<(f64, String)> = r
        .chaos
        .iter()
        .map(|c| {
            let word = c
                .command
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ");
            ((traffic_start.max(0.0) + c.at_s).min(last), word)
        })
        .collect();
    let over_time = chart(
        "Delivery latency over time (commit → read, live events)",
        "ms",
        &[
            Series {
                name: "p50",
                color: "#2b8a3e",
                points: lat(|p| p.p50_ms),
            },
            Series {
                name: "p99",
                color: "#e67700",
                points: lat(|p| p.p99_ms),
            },
            Series {
                name: "p99.9",
                color: "#c92a2a",
                points: lat(|p| p.p999_ms),
            },
        ],
        &secs_label,
        &ticks,
        &marks,
    );
    // Percentile distribution on the usual "nines" axis: x = log10(1/(1-q)).
    let nines = |pct: f64| (1.0 / (1.0 - pct / 100.0)).log10();
    let dist_points: Vec<(f64, f64)> = r
        .distribution
        .iter()
        .filter(|(p, _)| *p < 100.0)
        .map(|&(p, ms)| (nines(p), ms))
        .collect();
    let dist_ticks: Vec<f64> = [0.0, 90.0, 99.0, 99.9, 99.99].map(nines).to_vec();
    let distribution = chart(
        "Delivery latency distribution (all transports)",
        "ms",
        &[Series {
            name: "latency",
            color: "#1c7ed6",
            points: dist_points,
        }],
        &|x| {
            let q = 100.0 * (1.0 - 10f64.powf(-x));
            let q = format!("{q:.2}");
            format!("p{}", q.trim_end_matches('0').trim_end_matches('.'))
        },
        &dist_ticks,
        &[],
    );
    let deliveries = chart(
        "Deliveries per second",
        "events/s",
        &[Series {
            name: "deliveries/s",
            color: "#1c7ed6",
            points: secs(|p| p.deliveries as f64),
        }],
        &secs_label,
        &ticks,
        &marks,
    );
    let writes = chart(
        "Api writes and new orders per second",
        "per s",
        &[
            Series {
                name: "writes/s",
                color: "#862e9c",
                points: secs(|p| p.writes as f64),
            },
            Series {
                name: "orders/s",
                color: "#2b8a3e",
                points: secs(|p| p.orders as f64),
            },
        ],
        &secs_label,
        &ticks,
        &marks,
    );
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
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ordercast load test</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 800px; color: #212529; }}
h1 {{ font-size: 22px; }} pre {{ background: #f8f9fa; padding: 12px; overflow-x: auto; font-size: 12px; }}
figure {{ margin: 18px 0; }} svg {{ width: 100%; background: #fff; border: 1px solid #dee2e6; }}
.title {{ font-weight: 600; font-size: 13px; }} .tick {{ font-size: 11px; fill: #495057; }}
.grid {{ stroke: #e9ecef; }} .mark {{ stroke: #868e96; stroke-dasharray: 4 3; }}
.pass {{ color: #2b8a3e; font-weight: 600; }} .fail {{ color: #c92a2a; font-weight: 600; }}
</style></head><body>
<h1>Ordercast load test</h1>
{verdict}
{over_time}
{distribution}
{deliveries}
{writes}
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
            &|x| format!("{x}"),
            &[0.0, 1.0],
            &[(0.5, "kill".into())],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains(">kill<"));
        assert!(chart("e", "ms", &[], &|x| format!("{x}"), &[], &[]).contains("no data"));
    }
}
