#!/usr/bin/env python3
"""Summary of `make bench-scale`.

Argument: the directory with the step's files: scale-STEP-K.json, one
report per load tester (the first one sampled the server processes), and
scale-STEP-samples.txt, the script's own samples every 2 s (the machine's
CPU ticks, each edge's open streams, RSS and CPU ticks of every server and
tester). Prints the summary per step as JSON, or with --table as the
Markdown rows of docs/performance.md. --chart-limit is the Helm chart's
edge memory limit (e.g. 512Mi), which the memory step is compared with.
"""

import glob
import json
import os
import re
import sys

CLASSES = ("missing", "duplicate", "reordered", "foreign_restaurant", "foreign_audience",
           "altered", "before_cursor", "unexpected")


def mib(limit):
    """512Mi → 512.0; 1Gi → 1024.0."""
    m = re.fullmatch(r"(\d+)([KMG])i", limit or "")
    if not m:
        return None
    return int(m.group(1)) * {"K": 1 / 1024, "M": 1, "G": 1024}[m.group(2)]


def samples(path):
    """(edge names, process names, rows) of a samples file."""
    edges, procs, rows = [], [], []
    for line in open(path):
        if line.startswith("# edges:"):
            edges = line.split(":", 1)[1].split()
        elif line.startswith("# processes:"):
            procs = line.split(":", 1)[1].split()
        elif line.strip():
            rows.append([float(x) for x in line.split()])
    rows = [r for r in rows if len(r) == 3 + len(edges) + 2 * len(procs)]
    return edges, procs, rows


def from_samples(path):
    edges, procs, rows = samples(path)
    if len(rows) < 2:
        return {}
    first, last = rows[0], rows[-1]
    streams = [sum(r[3:3 + len(edges)]) for r in rows]
    held_at = max(range(len(rows)), key=lambda i: streams[i])
    # Ticks of both CPUs; the machine's busy ones less those of the
    # processes sampled (servers and testers, not PostgreSQL or Redis) are
    # roughly what other users of the machine took meanwhile.
    total = max(last[2] - first[2], 1)
    busy = total - (last[1] - first[1])
    out = {
        "samples": len(rows),
        "span_s": last[0] - first[0],
        "machine_busy": busy / total,
        "streams_held_peak": int(streams[held_at]),
        "streams_per_edge_at_peak": {e: int(rows[held_at][3 + i]) for i, e in enumerate(edges)},
        "processes": {},
    }
    base = 3 + len(edges)
    for i, p in enumerate(procs):
        rss = [r[base + 2 * i] for r in rows]
        ticks = [r[base + 2 * i + 1] for r in rows if r[base + 2 * i + 1] > 0]
        out["processes"][p] = {
            "rss_peak_mib": max(rss) / 1024,
            "cpu_s": (ticks[-1] - ticks[0]) / 100 if ticks else 0.0,
        }
    ours = sum(p["cpu_s"] * 100 for p in out["processes"].values())
    out["machine_busy_not_ours"] = max(busy - ours, 0) / total
    return out


def step(directory, name):
    reports = sorted(glob.glob(os.path.join(directory, f"scale-{name}-[0-9]*.json")),
                     key=lambda p: int(re.search(r"-(\d+)\.json$", p).group(1)))
    if not reports:
        return None
    rs = [json.load(open(p)) for p in reports]
    sampled = os.path.join(directory, f"scale-{name}-samples.txt")
    seen = from_samples(sampled) if os.path.exists(sampled) else {}
    _, procs, _ = samples(sampled) if os.path.exists(sampled) else ([], [], [])
    violations = {c: sum(r["verification"]["violations"][c] for r in rs) for c in CLASSES}
    transports = {}
    for r in rs:
        for t, n in r["connections"]["by_transport"].items():
            transports[t] = transports.get(t, 0) + n
    latency = [r["publish_to_read"]["all"] for r in rs]
    out = {
        "step": name,
        "testers": len(rs),
        "all_passed": all(r["passed"] for r in rs),
        "verdicts": [v for r in rs for v in r["verdict"]],
        "first_errors": [e for r in rs for e in r["first_errors"][:3]],
        "errors": sum(r["errors"] for r in rs),
        "screens": sum(r["connections"]["screens"] for r in rs),
        "screens_by_transport": transports,
        "connections_opened": sum(r["connections"]["opened"] for r in rs),
        "connections_failed": sum(r["connections"]["failed"] for r in rs),
        "closed_by_server": sum(r["connections"]["closed_by_server"] for r in rs),
        "connect_s": max(r["connections"]["connect_s"] for r in rs),
        "restaurants": sum(r["scenario"]["restaurants"] for r in rs),
        "rate": sum(r["scenario"]["rate"] for r in rs),
        "writes_per_s": sum(r["writes_per_s"] for r in rs),
        "measured_s": min(r["measured_s"] for r in rs),
        "deliveries": sum(r["deliveries"] for r in rs),
        "deliveries_per_s": sum(r["deliveries_per_s"] for r in rs),
        "expected": sum(r["verification"]["expected"] for r in rs),
        "received": sum(r["verification"]["received"] for r in rs),
        "violations": violations,
        "violations_total": sum(violations.values()),
        # Percentiles cannot be merged across testers: each tester's, and
        # the worst.
        "publish_to_read_per_tester": latency,
        "publish_to_read_worst": {k: max(l[k] for l in latency)
                                  for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")},
        "publish_to_read_by_transport": {t: [r["publish_to_read"][t] for r in rs
                                             if t in r["publish_to_read"]]
                                         for t in transports},
        "publish_request": rs[0]["api_latency"],
        **seen,
    }
    # The first tester sampled the servers (--pid, in the order the script
    # started them, then PostgreSQL as --pid-tree).
    servers = {}
    names = [p for p in procs if not p.startswith("tester")] + ["postgres"]
    for n, p in zip(names, rs[0]["processes"]):
        servers[n] = {
            "rss_before_mib": (p["rss_before_kib"] or 0) / 1024,
            "rss_connected_mib": (p["rss_connected_kib"] or 0) / 1024,
            "rss_peak_mib": p["rss_peak_kib"] / 1024,
            "rss_after_mib": p["rss_after_kib"] / 1024 if p["rss_after_kib"] else None,
            "cpu_measured_s": p["cpu_measured_s"],
            "cores": (p["cpu_measured_s"] or 0) / rs[0]["measured_s"] if rs[0]["measured_s"] else None,
        }
    out["servers"] = servers
    return out


def table(summary, limit):
    for s in summary:
        w = s["publish_to_read_worst"]
        print(f"\n{s['step']}: {s['screens']:,} screens "
              f"({', '.join(f'{t} {n:,}' for t, n in s['screens_by_transport'].items())}), "
              f"{s['restaurants']} restaurants, {s['testers']} tester(s); "
              f"peak streams held at the edges {s.get('streams_held_peak', 0):,} "
              f"{s.get('streams_per_edge_at_peak', {})}; connect {s['connect_s']:.1f} s, "
              f"{s['connections_failed']} failed, {s['closed_by_server']} closed by server")
        print(f"  {s['writes_per_s']:.1f} events/s published (asked {s['rate']:g}), "
              f"{s['deliveries']:,} deliveries ({s['deliveries_per_s']:,.0f}/s), "
              f"expected {s['expected']:,} received {s['received']:,}; violations "
              f"{s['violations_total']} (lost {s['violations']['missing']}, "
              f"duplicated {s['violations']['duplicate']}); passed {s['all_passed']}")
        print(f"  publish → read, worst tester: p50 {w['p50_ms']:.2f}, p99 {w['p99_ms']:.2f}, "
              f"p99.9 {w['p999_ms']:.2f}, max {w['max_ms']:.1f} ms; machine busy "
              f"{100 * s.get('machine_busy', 0):.0f} %, of which ≈"
              f"{100 * s.get('machine_busy_not_ours', 0):.0f} % not this benchmark's servers or testers")
        print("| process | RSS before / connected / peak MiB | after the linger MiB | CPU s measured (cores) |")
        print("|---|---|---|---|")
        for n, p in s["servers"].items():
            after = f"{p['rss_after_mib']:.1f}" if p["rss_after_mib"] else "—"
            print(f"| {n} | {p['rss_before_mib']:.1f} / {p['rss_connected_mib']:.1f} / "
                  f"{p['rss_peak_mib']:.1f} | {after} | {p['cpu_measured_s'] or 0:.2f} "
                  f"({p['cores'] or 0:.2f}) |")
        for n, p in s.get("processes", {}).items():
            if n.startswith("tester"):
                print(f"| {n} (whole run) | peak {p['rss_peak_mib']:.1f} | | {p['cpu_s']:.2f} |")
        if s["step"] == "memory" and limit:
            edge = s["servers"].get("edge", {})
            peak = edge.get("rss_peak_mib", 0)
            print(f"  edge peak RSS {peak:.1f} MiB of the chart's {limit:.0f} MiB limit: "
                  f"{100 * peak / limit:.0f} %, headroom {limit - peak:.0f} MiB")


def main(argv):
    show = "--table" in argv
    argv = [a for a in argv if a != "--table"]
    limit = None
    if "--chart-limit" in argv:
        i = argv.index("--chart-limit")
        limit = mib(argv[i + 1])
        del argv[i:i + 2]
    summary = [s for s in (step(argv[0], n) for n in ("screens", "memory")) if s]
    for s in summary:
        if s["step"] == "memory" and limit:
            s["chart_edge_memory_limit_mib"] = limit
    if show:
        table(summary, limit)
    else:
        json.dump(summary, sys.stdout, indent=2)
        print()


main(sys.argv[1:])
