#!/usr/bin/env python3
"""Medians of `make bench-fanout`'s runs.

Arguments: "LAYOUT SUBSCRIBERS REPORT.json", one per run. Prints the
medians per layout and subscriber count as JSON, or with --table as the
Markdown rows of docs/performance.md. The server processes are the
`--pid` ones (api and edge, or all); PostgreSQL is the `--pid-tree` one.
"""

import json
import statistics
import sys


def figures(path):
    r = json.load(open(path))
    servers = [p for p in r["processes"] if "children" not in p["name"]]
    postgres = [p for p in r["processes"] if "children" in p["name"]]
    latency = r["publish_to_read"]["sse"]
    return {
        "passed": r["passed"],
        "lost": r["verification"]["violations"]["missing"],
        "duplicated": r["verification"]["violations"]["duplicate"],
        "deliveries_per_s": r["deliveries_per_s"],
        "p50_ms": latency["p50_ms"],
        "p90_ms": latency["p90_ms"],
        "p99_ms": latency["p99_ms"],
        "p999_ms": latency["p999_ms"],
        "server_cpu_s": sum(p["cpu_measured_s"] or 0 for p in servers),
        "server_cpu_us_per_delivery": sum(p["cpu_us_per_delivery"] or 0 for p in servers),
        "postgres_cpu_s": sum(p["cpu_measured_s"] or 0 for p in postgres),
        "server_peak_rss_mib": sum(p["rss_peak_kib"] for p in servers) / 1024,
        "publish_p50_ms": r["api_latency"]["p50_ms"],
        "publish_p99_ms": r["api_latency"]["p99_ms"],
    }


def main(argv):
    table = argv[:1] == ["--table"]
    runs = {}
    for run in argv[1:] if table else argv:
        layout, n, path = run.split()
        runs.setdefault((layout, int(n)), []).append(figures(path))
    summary = []
    for (layout, n), rs in runs.items():
        medians = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k not in ("passed",)}
        summary.append({"layout": layout, "subscribers": n, "runs": len(rs),
                        "all_passed": all(r["passed"] for r in rs), **medians})
    if not table:
        json.dump(summary, sys.stdout, indent=2)
        print()
        return
    print("| layout | screens | p50 / p90 ms | p99 / p99.9 ms | server CPU µs per delivery | server CPU s | PostgreSQL CPU s | peak RSS MiB | publish p50 / p99 ms | lost, duplicated |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in summary:
        print(f"| {s['layout']} | {s['subscribers']:,} | {s['p50_ms']:.2f} / {s['p90_ms']:.2f} "
              f"| {s['p99_ms']:.2f} / {s['p999_ms']:.2f} | {s['server_cpu_us_per_delivery']:.2f} "
              f"| {s['server_cpu_s']:.2f} | {s['postgres_cpu_s']:.2f} | {s['server_peak_rss_mib']:.1f} "
              f"| {s['publish_p50_ms']:.2f} / {s['publish_p99_ms']:.2f} | {s['lost']:.0f}, {s['duplicated']:.0f} |")


main(sys.argv[1:])
