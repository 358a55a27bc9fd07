#!/usr/bin/env bash
# `make bench-regions`: the regions targets (docs/performance.md) on the
# local two-region rig, 40 ms one way on every link, 100 events/s:
#   1. steady: request start in the home region → read in the other
#      region, p99 (target: the link delay + 25 ms);
#   2. the same with eu and us partitioned for the whole 60 s: in-region
#      delivery p99 (target: within 20 % of run 1's), and how long after
#      the heal the other region's screens are caught up (target: 5 s).
# Uses a running `make cluster-regions` or starts one (and stops it).
# Writes target/bench/regions-steady.json and regions-partition.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

rig=scripts/cluster-regions.sh
cluster_use_or_start $rig
release_build
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p target/bench
cp -f "$target_dir/release/ordercast-loadtest" target/bench/ordercast-loadtest.bin

mapfile -t args < <($rig loadtest-args)
# shellcheck disable=SC1091
ORDERCAST_JWT_SECRET=$(source target/regions/eu.env && echo "$ORDERCAST_JWT_SECRET")
export ORDERCAST_JWT_SECRET
run() { # name, extra arguments
  local name=$1; shift
  echo "==> $name"
  target/bench/ordercast-loadtest.bin run --scenario loadtest/scenarios/regions-bench.toml \
    "${args[@]}" --json "target/bench/regions-$name.json" --quiet "$@" || true
}
run steady
# The partition covers the whole measured minute (traffic starts after the
# 5 s warm-up); the heal comes as it ends.
run partition --exec "5s=$rig partition eu us" --exec "65s=$rig heal"

python3 - <<'PY'
import json
steady = json.load(open("target/bench/regions-steady.json"))
cut = json.load(open("target/bench/regions-partition.json"))
def lat(d, kind, side):
    return d["regions"][kind][side]
print(f"steady:    passed={steady['passed']}  request->read remote p50/p99/max "
      f"{lat(steady,'request_to_read','remote')['p50_ms']:.1f} / {lat(steady,'request_to_read','remote')['p99_ms']:.1f} / "
      f"{lat(steady,'request_to_read','remote')['max_ms']:.1f} ms; local p99 "
      f"{lat(steady,'commit_to_read','local')['p99_ms']:.1f} ms (commit->read)")
local_steady = lat(steady, "commit_to_read", "local")["p99_ms"]
local_cut = lat(cut, "commit_to_read", "local")["p99_ms"]
print(f"partition: passed={cut['passed']}  in-region commit->read p99 {local_cut:.1f} ms "
      f"({(local_cut / local_steady - 1) * 100:+.0f} % against steady)")
heal = next(c["at_s"] for c in cut["chaos"] if c["command"].endswith("heal"))
# Caught up: the first second after the heal from which remote p99 is back
# under a second (events committed during the partition are all read).
late = [p["t"] for p in cut["timeline"] if p["t"] >= heal and p["p99_remote_ms"] > 1000]
print(f"partition: remote screens caught up {max(late) + 1 - heal if late else 0:.0f} s after the heal "
      f"(1 s resolution; heal at {heal:.0f} s)")
PY
