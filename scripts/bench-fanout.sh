#!/usr/bin/env bash
# `make bench-fanout`: fan-out cost on this machine, the scenario of
# docs/performance.md "Fan-out": 100 restaurants, 200 custom events/s
# (256-byte data, kitchen audience) published through the api's
# `POST …/events`, SSE screens reading with `Authorization: Bearer`;
# latency from just before the publish request to the screen's read.
# Release build, PostgreSQL at its default durability (fsync and
# synchronous_commit on), Redis, the servers restarted for every run.
# Layouts: `all` (one `ordercast all`) and `split` (one api, one edge).
#
# FANOUT_SUBSCRIBERS (default "2000 5000"), FANOUT_LAYOUTS ("all split"),
# FANOUT_RUNS (3), FANOUT_DURATION (20s), FANOUT_RATE (200) override.
# Writes target/bench/fanout-<layout>-<subscribers>-<run>.json and the
# medians over the runs to target/bench/fanout.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

SUBSCRIBERS=${FANOUT_SUBSCRIBERS:-2000 5000}
LAYOUTS=${FANOUT_LAYOUTS:-all split}
RUNS=${FANOUT_RUNS:-3}
DURATION=${FANOUT_DURATION:-20s}
RATE=${FANOUT_RATE:-200}
RESTAURANTS=100

services_install
work=$(mktemp -d /tmp/ordercast-fanout.XXXXXX)
chmod 755 "$work"
pids=()
stop_servers() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_servers
  services_stop
  rm -rf "$work"
}
on_exit cleanup

release_build

bench_services "$work"
target/release/ordercast migrate

# start ROLE — one server of ROLE on fresh ports; sets $base and $admin and
# appends its pid to $pids.
start() {
  local role=$1 port admin_port
  port=$(free_port); admin_port=$(free_port)
  ORDERCAST_LISTEN="127.0.0.1:$port" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    target/release/ordercast "$role" >"$work/$role.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/$role.pid"
  wait_ready "127.0.0.1:$admin_port" "$work/$role.pid" "ordercast $role" "$work/$role.log"
  base="http://127.0.0.1:$port"
}

mkdir -p target/bench
results=()
for layout in $LAYOUTS; do
  for n in $SUBSCRIBERS; do
    for run in $(seq "$RUNS"); do
      stop_servers
      if [ "$layout" = all ]; then
        start all; api=$base; edge=$base
      else
        start api; api=$base
        start edge; edge=$base
      fi
      out=target/bench/fanout-$layout-$n-$run.json
      echo "==> $layout, $n SSE screens, $RATE events/s for $DURATION (run $run of $RUNS)"
      process_flags=()
      for pid in "${pids[@]}"; do process_flags+=(--pid "$pid"); done
      target/release/ordercast-loadtest run --api "$api" --edge "$edge" \
        --jwt-secret "$ORDERCAST_JWT_SECRET" --restaurants "$RESTAURANTS" \
        --kitchens $((n / RESTAURANTS)) --owners 0 --waiters 0 --customers 0 \
        --transports sse=1 --lifecycle publish --payload-bytes 256 --rate "$RATE" \
        --notification-rate 0 --ramp 10s --warmup 5s --duration "$DURATION" \
        "${process_flags[@]}" --pid-tree "$pg_pid" --json "$out" --quiet
      results+=("$layout $n $out")
    done
  done
done
stop_servers

python3 scripts/bench-fanout-summary.py "${results[@]}" >target/bench/fanout.json
python3 scripts/bench-fanout-summary.py --table "${results[@]}"
echo "==> target/bench/fanout.json"
