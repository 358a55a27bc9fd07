#!/usr/bin/env bash
# What guests resuming from far behind cost the edge (docs/performance.md,
# "Edge: guests resuming from far behind"): one restaurant with
# RESUME_EVENTS orders (default 4 000) of which the last 2 are table session
# s1's; then RESUME_CLIENTS (default 20) long-polls `since=0&wait=0` with s1's
# customer token, one after the other. Prints the CPU seconds the process
# spent on them (utime + stime from /proc/<pid>/stat).
# Usage: scripts/bench-resume.sh [BINARY]   (default: target/debug/ordercast,
# or $CARGO_TARGET_DIR's)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/ordercast}
events=${RESUME_EVENTS:-4000}
clients=${RESUME_CLIENTS:-20}

server_pid=""
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  test_services_cleanup
}
on_exit cleanup
test_services_throwaway resume
http=$(free_port)
admin_port=$(free_port)
export ORDERCAST_DATABASE_URL=$ORDERCAST_TEST_DATABASE_URL
export ORDERCAST_REDIS_URL=$ORDERCAST_TEST_REDIS_URL
export ORDERCAST_JWT_SECRET="resume-secret-0123456789-0123456789-abcdef"
export ORDERCAST_LISTEN="127.0.0.1:$http" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port"
export ORDERCAST_RESTAURANT_WRITE_RATE=0 RUST_LOG=warn
base="http://127.0.0.1:$http"
"$bin" migrate
"$bin" all >"$TEST_SERVICES_DIR/ordercast.log" 2>&1 &
server_pid=$!
echo "$server_pid" >"$TEST_SERVICES_DIR/ordercast.pid"
wait_ready "127.0.0.1:$admin_port" "$TEST_SERVICES_DIR/ordercast.pid" ordercast "$TEST_SERVICES_DIR/ordercast.log"

admin=$("$bin" token --role admin --restaurant '*' --sub bench)
rid=$(curl -fsS -H "authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"name":"Resume Bistro"}' "$base/v1/restaurants" | sed 's/.*"id":"\([^"]*\)".*/\1/')
owner=$("$bin" token --role owner --restaurant "$rid" --sub bench-owner)
guest=$("$bin" token --role customer --restaurant "$rid" --session s1 --sub bench-guest)
post_order() {
  curl -fsS -o /dev/null -H "authorization: Bearer $owner" -H 'content-type: application/json' \
    -d "{\"channel\":\"qr\",\"session_id\":\"$1\",\"items\":[{\"sku\":\"b\",\"name\":\"Burger\",\"quantity\":1,\"unit_price_cents\":1250}]}" \
    "$base/v1/restaurants/$rid/orders"
}
export -f post_order
export owner base rid
echo "==> $events orders"
seq $((events - 2)) | xargs -P 8 -I{} bash -c 'post_order s2'
post_order s1
post_order s1

cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
ticks=$(getconf CLK_TCK)
before=$(cpu)
for _ in $(seq "$clients"); do
  curl -fsS -H "authorization: Bearer $guest" "$base/v1/restaurants/$rid/events?since=0&wait=0&limit=1000" \
    | grep -o '"seq":[0-9]*' | tr '\n' ' '
  echo
done | sort | uniq -c
after=$(cpu)
awk -v t="$ticks" -v n="$clients" -v b="$before" -v a="$after" \
  'BEGIN { printf "==> %d resumes from 0: %.2f CPU-s\n", n, (a - b) / t }'
