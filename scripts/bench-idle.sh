#!/usr/bin/env bash
# `make bench-idle`: memory per idle connection, per transport. One release
# `ordercast all` (PostgreSQL, Redis on loopback), restarted for every
# transport and run; the load tester opens N screens over 100 restaurants
# (kitchen role, one restaurant each), sends no events, and reads the
# server's RSS before the first screen and once all are subscribed:
# (RSS after − RSS before) / N, in KiB.
#
# IDLE_CONNECTIONS (default 5000), IDLE_TRANSPORTS ("sse ws"), IDLE_RUNS (1)
# override; IDLE_BIN runs another `ordercast` binary (e.g. an older build,
# for a before/after; no build then). Writes target/bench/idle-<transport>-<run>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

CONNECTIONS=${IDLE_CONNECTIONS:-5000}
TRANSPORTS=${IDLE_TRANSPORTS:-sse ws}
RUNS=${IDLE_RUNS:-1}
RESTAURANTS=100
release=${CARGO_TARGET_DIR:-target}/release

services_install
work=$(mktemp -d /tmp/ordercast-idle.XXXXXX)
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

# IDLE_BIN is a binary built elsewhere: the load tester is the one here.
[ -n "${IDLE_BIN:-}" ] || release_build
bin=${IDLE_BIN:-$release/ordercast}

bench_services "$work"
"$bin" migrate

mkdir -p target/bench
for transport in $TRANSPORTS; do
  for run in $(seq "$RUNS"); do
    stop_server
    port=$(free_port); admin_port=$(free_port)
    ORDERCAST_LISTEN="127.0.0.1:$port" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port" \
      "$bin" all >"$work/all.log" 2>&1 &
    server=$!
    echo "$server" >"$work/all.pid"
    wait_ready "127.0.0.1:$admin_port" "$work/all.pid" "ordercast all" "$work/all.log"
    out=target/bench/idle-$transport-$run.json
    echo "==> $CONNECTIONS idle $transport connections (run $run of $RUNS)"
    "$release/ordercast-loadtest" run --api "http://127.0.0.1:$port" \
      --edge "http://127.0.0.1:$port" --jwt-secret "$ORDERCAST_JWT_SECRET" \
      --restaurants "$RESTAURANTS" --kitchens $((CONNECTIONS / RESTAURANTS)) \
      --owners 0 --waiters 0 --customers 0 --transports "$transport=1" \
      --lifecycle create --notification-rate 0 --rate 0 \
      --ramp 10s --warmup 0s --duration 3s --pid "$server" --json "$out" --quiet
    python3 - "$out" "$transport" "$CONNECTIONS" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
p = report["processes"][0]
before, after = p["rss_before_kib"], p["rss_connected_kib"]
n = int(sys.argv[3])
print(f"{sys.argv[2]}: RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
      f"for {n} connections = {(after - before) / n:.2f} KiB per connection")
EOF
  done
done
