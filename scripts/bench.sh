#!/usr/bin/env bash
# `make bench`: the api's order-creation benchmark on this machine.
# Release build, PostgreSQL at its default durability (fsync and
# synchronous_commit on), Redis, one `ordercast api`, and the load tester
# on the same machine. Writes target/bench/orders.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

RATE=${BENCH_RATE:-1500}
DURATION=${BENCH_DURATION:-30s}
RESTAURANTS=${BENCH_RESTAURANTS:-50}

services_install
work=$(mktemp -d /tmp/ordercast-bench.XXXXXX)
chmod 755 "$work"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  services_stop
  rm -rf "$work"
}
on_exit cleanup

release_build

pg_port=$(free_port); redis_port=$(free_port); http_port=$(free_port); admin_port=$(free_port)
postgres_start "$work/pg" "$pg_port"
createdb_if_missing "$pg_port" ordercast
postgres_warm_wal "$pg_port" ordercast
redis_start "$work/redis" "$redis_port"

export ORDERCAST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/ordercast"
export ORDERCAST_REDIS_URL="redis://127.0.0.1:$redis_port"
export ORDERCAST_JWT_SECRET="bench-secret-0123456789-0123456789-abcdef"
export ORDERCAST_LISTEN="127.0.0.1:$http_port"
export ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port"
# Every benchmark client comes from 127.0.0.1.
export ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS=0
export RUST_LOG=warn
# The benchmark measures the write path, not the per-restaurant command rate
# (BENCH_RATE / BENCH_RESTAURANTS may well exceed it).
export ORDERCAST_RESTAURANT_WRITE_RATE=0
target/release/ordercast migrate
target/release/ordercast api > "$work/api.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

mkdir -p target/bench
echo "==> $RATE orders/s for $DURATION over $RESTAURANTS restaurants"
target/release/ordercast-loadtest orders --api "http://127.0.0.1:$http_port" \
  --rate "$RATE" --duration "$DURATION" --restaurants "$RESTAURANTS" --json target/bench/orders.json
echo "==> server side (POST orders latency buckets, seconds: cumulative count)"
metrics=$(curl -fs "http://127.0.0.1:$admin_port/metrics")
echo "$metrics" | grep 'ordercast_http_request_duration_seconds_bucket{method="POST",route="/v1/restaurants/{rid}/orders",status="201"' \
  | sed -E 's/.*le="([^"]+)"} ([0-9]+)/  le \1: \2/'
echo "$metrics" | grep -E '^ordercast_(publish_latency_seconds_(sum|count)|outbox_backlog|events_published_total|order_batch_size_(sum|count))' || true
ps -o rss=,time= -p "$server_pid" | awk '{printf "ordercast api: RSS %.1f MiB, CPU time %s\n", $1/1024, $2}'
