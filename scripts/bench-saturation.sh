#!/usr/bin/env bash
# `make bench-saturation`: the highest event rate at which 5,000 SSE
# screens still read within 50 ms at p99, on this machine (docs/
# performance.md "Saturation"). One `ordercast all` (release build),
# PostgreSQL at its default durability (WAL warmed), Redis; the scenario of
# `make bench-fanout` (100 restaurants, custom `x.bench` events of 256
# bytes for the kitchen published with `POST …/events`, SSE kitchen
# screens), the rate stepped up, the server restarted for every step.
# Stops after the first step whose publish → read p99 is above
# SATURATION_P99_MS (50) or whose publisher fell more than 5 % behind the
# rate.
#
# SATURATION_RATES ("200 400 800 1200 1600 2400 3200"), SATURATION_SCREENS
# (5000), SATURATION_DURATION (20s) override. Writes
# target/bench/saturation-<rate>.json and the curve, one entry per step, to
# target/bench/saturation.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

RATES=${SATURATION_RATES:-200 400 800 1200 1600 2400 3200}
SCREENS=${SATURATION_SCREENS:-5000}
DURATION=${SATURATION_DURATION:-20s}
P99_MS=${SATURATION_P99_MS:-50}
RESTAURANTS=100

services_install
work=$(mktemp -d /tmp/ordercast-saturation.XXXXXX)
chmod 755 "$work"
server=""
stop_server() {
  [ -z "$server" ] || { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true; }
  server=""
}
cleanup() {
  stop_server
  services_stop
  rm -rf "$work"
}
on_exit cleanup

release_build

bench_services "$work"
target/release/ordercast migrate

# cpu_ticks — the machine's busy and total CPU ticks.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

mkdir -p target/bench
rm -f target/bench/saturation-*.json
steps=()
for rate in $RATES; do
  stop_server
  port=$(free_port); admin_port=$(free_port)
  ORDERCAST_LISTEN="127.0.0.1:$port" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    target/release/ordercast all >"$work/all.log" 2>&1 &
  server=$!
  echo "$server" >"$work/all.pid"
  wait_ready "127.0.0.1:$admin_port" "$work/all.pid" "ordercast all" "$work/all.log"
  base="http://127.0.0.1:$port"
  out=target/bench/saturation-$rate.json
  echo "==> $rate events/s to $SCREENS SSE screens for $DURATION"
  read -r busy0 total0 < <(cpu_ticks)
  # The tester's own CPU: `times` in a subshell prints its children's.
  tester_cpu=$( (target/release/ordercast-loadtest run --api "$base" --edge "$base" \
    --jwt-secret "$ORDERCAST_JWT_SECRET" --restaurants "$RESTAURANTS" \
    --kitchens $((SCREENS / RESTAURANTS)) --owners 0 --waiters 0 --customers 0 \
    --transports sse=1 --lifecycle publish --payload-bytes 256 --rate "$rate" \
    --notification-rate 0 --ramp 10s --warmup 5s --duration "$DURATION" \
    --pid "$server" --pid-tree "$pg_pid" --pid "$redis_pid" --json "$out" --quiet \
    >"$work/tester.log" 2>&1 || true; times) | tail -n 1)
  read -r busy1 total1 < <(cpu_ticks)
  if [ ! -s "$out" ]; then
    echo "the load tester wrote no report:" >&2
    tail -n 20 "$work/tester.log" >&2
    break
  fi
  steps+=("$out $tester_cpu $((busy1 - busy0)) $((total1 - total0))")
  python3 scripts/bench-saturation-summary.py --p99-ms "$P99_MS" --line "${steps[-1]}"
  python3 scripts/bench-saturation-summary.py --p99-ms "$P99_MS" --saturated "${steps[-1]}" && break
done
stop_server

python3 scripts/bench-saturation-summary.py --p99-ms "$P99_MS" "${steps[@]}" >target/bench/saturation.json
python3 scripts/bench-saturation-summary.py --p99-ms "$P99_MS" --table "${steps[@]}"
echo "==> target/bench/saturation.json"
