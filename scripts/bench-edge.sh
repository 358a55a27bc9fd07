#!/usr/bin/env bash
# `make bench-edge`: the edge targets of docs/performance.md, measured with
# the load tester against ONE edge of the local cluster (release build,
# PostgreSQL at default durability), clients on the same machine:
#   1. idle connections: 15 000 SSE screens, RSS per connection;
#   2. delivery latency: 5 000 SSE screens over 100 restaurants, 200 events/s;
#   3. mass reconnect: 2 000 SSE screens all cut at once, every 10 s.
# Uses a running `make cluster`, or starts one and stops it afterwards.
# Writes target/bench/edge-*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

started=""
if ! scripts/cluster.sh status >/dev/null 2>&1; then
  scripts/cluster.sh up
  started=1
fi
cleanup() { [ -z "$started" ] || scripts/cluster.sh down; }
on_exit cleanup
release_build
# shellcheck disable=SC1091
source target/cluster/env
pg_port=${ORDERCAST_DATABASE_URL##*:}
postgres_warm_wal "${pg_port%%/*}" ordercast
read -r api1 api2 <<<"$CLUSTER_APIS"
read -r edge1 _ <<<"$CLUSTER_EDGES"
mkdir -p target/bench
lt() {
  target/release/ordercast-loadtest run --api "$api1" --api "$api2" --edge "$edge1" \
    --pid-file target/cluster/edge1.pid --owners 0 --waiters 0 --customers 0 \
    --transports sse=1 --lifecycle create --notification-rate 0 "$@"
}

echo "==> 1/3 idle: 15 000 SSE connections on one edge"
lt --restaurants 100 --kitchens 150 --rate 0 --ramp 20s --warmup 0s --duration 5s \
  --json target/bench/edge-idle.json

echo "==> 2/3 latency: 5 000 SSE over 100 restaurants, 200 events/s"
lt --restaurants 100 --kitchens 50 --rate 200 --ramp 10s --warmup 5s --duration 60s \
  --json target/bench/edge-latency.json

echo "==> 3/3 mass reconnect: 2 000 SSE cut at once every 10 s"
lt --restaurants 100 --kitchens 20 --rate 50 --ramp 5s --warmup 5s --duration 40s \
  --drop-share 1 --drop-every 10s --json target/bench/edge-reconnect.json
