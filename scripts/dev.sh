#!/usr/bin/env bash
# `make run`: local PostgreSQL + Redis on loopback (data in .local/), migrate,
# a demo restaurant, links to its screens (kitchen, owner, table), a small
# simulated flow of orders that keeps them alive, working curl examples, and
# the service (`ordercast all`: api and edge on one port) in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

PG_PORT=${ORDERCAST_DEV_PG_PORT:-55432}
REDIS_PORT=${ORDERCAST_DEV_REDIS_PORT:-56379}
HTTP_PORT=${ORDERCAST_DEV_HTTP_PORT:-8080}
ADMIN_PORT=${ORDERCAST_DEV_ADMIN_PORT:-9090}
DEMO_RESTAURANT=6f1c0d2e-5a8e-4c1b-9f3a-0d3e7c9b1a42
DEMO_CHAIN=7a2b3c4d-0000-4000-8000-00000000c0de

services_install
mkdir -p .local
chmod 755 .local
server_pid=""
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  services_stop
}
on_exit cleanup

echo "==> PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT (data in .local/)"
postgres_start "$PWD/.local/pg" "$PG_PORT"
createdb_if_missing "$PG_PORT" ordercast
redis_start "$PWD/.local/redis" "$REDIS_PORT"

[ -f .local/jwt-secret ] || head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > .local/jwt-secret
export ORDERCAST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/ordercast"
export ORDERCAST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export ORDERCAST_JWT_SECRET="$(cat .local/jwt-secret)"
export ORDERCAST_LISTEN="127.0.0.1:$HTTP_PORT"
export ORDERCAST_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT"
export ORDERCAST_ADMIN_TOKEN="$(cat .local/jwt-secret)-admin"
export ORDERCAST_LOG_FORMAT=${ORDERCAST_LOG_FORMAT:-pretty}

echo "==> building (a first build takes about 9 minutes on 2 cores; later ones seconds)"
cargo build -p ordercast
bin=target/debug/ordercast
$bin migrate

$bin all &
server_pid=$!
for _ in $(seq 200); do
  curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "ordercast exited; see the log above"; exit 1; }
  sleep 0.1
done

admin=$($bin token --role admin --chain "$DEMO_CHAIN" --sub demo-admin)
owner=$($bin token --role owner --restaurant "$DEMO_RESTAURANT" --sub demo-owner)
kitchen=$($bin token --role kitchen --restaurant "$DEMO_RESTAURANT" --sub demo-kds)
guest=$($bin token --role customer --restaurant "$DEMO_RESTAURANT" --session table-12 --sub demo-guest)
curl -fs -o /dev/null -X POST "http://127.0.0.1:$HTTP_PORT/v1/restaurants" \
  -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$DEMO_RESTAURANT\",\"name\":\"Demo Bistro\",\"region\":\"local\"}" || true

api="http://127.0.0.1:$HTTP_PORT"
if [ "${ORDERCAST_DEV_SIMULATE:-1}" != 0 ] && command -v node >/dev/null 2>&1; then
  node web/tools/simulate.js --api "$api" --restaurant "$DEMO_RESTAURANT" --token "$owner" \
    --guest-token "$guest" --guest-table 12 &
  sim_pid=$!
  simulation="A simulated flow of orders keeps them moving (ORDERCAST_DEV_SIMULATE=0 turns it off)."
else
  simulation="No simulated orders (ORDERCAST_DEV_SIMULATE=0, or Node.js is not installed)."
fi
# New on every run: a key from an earlier run (same database) would replay
# that run's order, and nothing would appear on the stream.
demo_key="demo-$(date +%Y%m%d-%H%M%S)"
psql="$(pg_bindir)/psql -h 127.0.0.1 -p $PG_PORT -U postgres ordercast"
cat <<MSG

  Ordercast is running (api + edge): $api, admin http://127.0.0.1:$ADMIN_PORT (metrics, readyz, debug/stats, debug/undelivered)
  Demo restaurant: $DEMO_RESTAURANT

  Screens (open in a browser; the token sits in the #fragment, which is never sent to a server):
    Kitchen display:  $api/demo/kitchen.html#token=$kitchen&restaurant=$DEMO_RESTAURANT
    Owner dashboard:  $api/demo/owner.html#token=$owner&restaurant=$DEMO_RESTAURANT
    Table 12 (guest): $api/demo/table.html#token=$guest&restaurant=$DEMO_RESTAURANT&table=12
  $simulation

  Tokens (12 h):
    export OWNER='$owner'
    export KITCHEN='$kitchen'

  Watch the kitchen's live stream (SSE, from now; leave it open and create an order in another terminal):
    curl -N $api/v1/restaurants/$DEMO_RESTAURANT/stream -H "Authorization: Bearer \$KITCHEN"

  Create an order:
    curl -s -X POST $api/v1/restaurants/$DEMO_RESTAURANT/orders \\
      -H "Authorization: Bearer \$OWNER" -H 'Content-Type: application/json' -H 'Idempotency-Key: $demo_key' \\
      -d '{"channel":"pos","table":"12","items":[{"sku":"burger","name":"Burger","quantity":2,"unit_price_cents":1250,"station":"grill"}]}'
    Repeating this command is safe: the same Idempotency-Key returns the same order, not a second one.

  Open orders, as the kitchen sees them (with the seq they reflect):
    curl -s $api/v1/restaurants/$DEMO_RESTAURANT/orders -H "Authorization: Bearer \$KITCHEN"

  Reconnect and resume after the last id you saw (0: replay from the first event, then stay live):
    curl -N $api/v1/restaurants/$DEMO_RESTAURANT/stream -H "Authorization: Bearer \$KITCHEN" -H 'Last-Event-ID: 0'

  Long-poll (answers at once when events follow since, else waits up to 25 s; send "next" as since the next time):
    curl -s "$api/v1/restaurants/$DEMO_RESTAURANT/events?since=0&limit=100&wait=25" -H "Authorization: Bearer \$KITCHEN"

  The durable record and the stream:
    $psql -c 'SELECT seq, type, created_at FROM events ORDER BY seq'
    $psql -c 'SELECT count(*) AS not_yet_in_redis FROM outbox'
    redis-cli -p $REDIS_PORT XRANGE "\$(redis-cli -p $REDIS_PORT --scan --pattern 'oc:*:r:$DEMO_RESTAURANT')" - +

  Orders no kitchen screen has received within 30 s (delivery ledger; empty while a kitchen screen is open):
    curl -s http://127.0.0.1:$ADMIN_PORT/debug/undelivered -H "Authorization: Bearer \$(cat .local/jwt-secret)-admin"

  API description: $api/openapi.json      Stop: Ctrl-C

MSG
wait "$server_pid"
