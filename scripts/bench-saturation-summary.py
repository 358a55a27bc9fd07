#!/usr/bin/env python3
"""The curve of `make bench-saturation`.

Arguments: one "REPORT.json TESTER_USER TESTER_SYS BUSY_TICKS TOTAL_TICKS"
per step (the tester's CPU as bash's `times` prints it, the machine's busy
and total CPU ticks over the step). Prints the steps as JSON, or with
--table as the Markdown rows of docs/performance.md, or with --line one
step's line; --saturated exits 0 when the (one) step is past the limit:
publish → read p99 above --p99-ms, the publisher more than 5 % behind the
asked rate, or a failed run. The server is the first process (`ordercast
all`), then Redis, then PostgreSQL (with its backends).
"""

import json
import re
import sys

# The publisher counts as keeping the rate down to this share of it.
KEPT = 0.95


def seconds(t):
    """bash `times`: 1m2.500s → 62.5."""
    m = re.fullmatch(r"(\d+)m([\d.]+)s", t)
    return int(m.group(1)) * 60 + float(m.group(2)) if m else 0.0


def figures(arg, p99_limit):
    path, user, sys_, busy, total = arg.split()
    r = json.load(open(path))
    measured = r["measured_s"] or 1
    # The tester lists its --pid processes, then its --pid-tree ones.
    server, redis, postgres = (r["processes"] + [{}, {}, {}])[:3]
    latency = r["publish_to_read"]["all"]
    v = r["verification"]["violations"]
    out = {
        "rate": r["scenario"]["rate"],
        "published_per_s": r["writes_per_s"],
        "screens": r["connections"]["screens"],
        "deliveries_per_s": r["deliveries_per_s"],
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "p999_ms": latency["p999_ms"],
        "max_ms": latency["max_ms"],
        "commit_to_read_p99_ms": r["delivery_latency"]["all"]["p99_ms"],
        "publish_request_p99_ms": r["api_latency"]["p99_ms"],
        "server_cores": (server.get("cpu_measured_s") or 0) / measured,
        "server_cpu_us_per_delivery": server.get("cpu_us_per_delivery"),
        "postgres_cores": (postgres.get("cpu_measured_s") or 0) / measured,
        "redis_cores": (redis.get("cpu_measured_s") or 0) / measured,
        "server_peak_rss_mib": server.get("rss_peak_kib", 0) / 1024,
        # Over the tester's whole run (setup, ramp, settle and check too).
        "tester_cpu_s": seconds(user) + seconds(sys_),
        "machine_busy": int(busy) / max(int(total), 1),
        "lost": v["missing"],
        "duplicated": v["duplicate"],
        "passed": r["passed"],
        "verdict": r["verdict"],
    }
    out["kept_rate"] = out["published_per_s"] >= KEPT * out["rate"]
    out["within_p99"] = out["p99_ms"] <= p99_limit
    out["saturated"] = not (out["kept_rate"] and out["within_p99"] and out["passed"])
    return out


def line(s):
    return (f"{s['rate']:g} events/s: published {s['published_per_s']:.0f}/s, "
            f"{s['deliveries_per_s']:,.0f} deliveries/s, publish → read p50 {s['p50_ms']:.2f} / "
            f"p99 {s['p99_ms']:.2f} / p99.9 {s['p999_ms']:.2f} ms, server {s['server_cores']:.2f} "
            f"cores, PostgreSQL {s['postgres_cores']:.2f}, machine busy "
            f"{100 * s['machine_busy']:.0f} %, lost {s['lost']}, duplicated {s['duplicated']}"
            f"{'' if not s['saturated'] else ' — past the limit'}")


def main(argv):
    p99_limit = 50.0
    if "--p99-ms" in argv:
        i = argv.index("--p99-ms")
        p99_limit = float(argv[i + 1])
        del argv[i:i + 2]
    mode = argv[0] if argv and argv[0].startswith("--") else None
    steps = [figures(a, p99_limit) for a in (argv[1:] if mode else argv)]
    if mode == "--saturated":
        sys.exit(0 if steps[0]["saturated"] else 1)
    if mode == "--line":
        print("    " + line(steps[0]))
        return
    if mode != "--table":
        json.dump(steps, sys.stdout, indent=2)
        print()
        return
    print("| events/s asked / published | deliveries/s | publish → read p50 / p99 / p99.9 ms "
          "| commit → read p99 ms | server cores | µs per delivery | PostgreSQL cores "
          "| tester CPU s | machine busy | lost, duplicated |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in steps:
        mark = " (past the limit)" if s["saturated"] else ""
        print(f"| {s['rate']:g} / {s['published_per_s']:.0f}{mark} | {s['deliveries_per_s']:,.0f} "
              f"| {s['p50_ms']:.2f} / {s['p99_ms']:.2f} / {s['p999_ms']:.2f} "
              f"| {s['commit_to_read_p99_ms']:.2f} | {s['server_cores']:.2f} "
              f"| {s['server_cpu_us_per_delivery'] or 0:.1f} | {s['postgres_cores']:.2f} "
              f"| {s['tester_cpu_s']:.1f} | {100 * s['machine_busy']:.0f} % "
              f"| {s['lost']}, {s['duplicated']} |")


main(sys.argv[1:])
