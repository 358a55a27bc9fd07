#!/usr/bin/env bash
# `make dashboard-test`: the Grafana dashboard and the chart's alert rules
# against a real Prometheus (Debian's `prometheus` package). Starts
# throw-away PostgreSQL and Redis, one `ordercast all`, and a Prometheus that
# scrapes its admin port every second with the alert rules loaded; runs a
# 40 s load test during which screens are cut and resume, Redis hangs
# (SIGSTOP) for 5 s and then PostgreSQL does, so the error, degraded and
# catch-up panels have series too; then every panel's query must return
# data and every rule must evaluate (charts/ordercast/tests/dashboard_live.py).
# Stops what it started. ORDERCAST_BIN / LOADTEST_BIN name binaries to use
# instead of building them (target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

chart_tools
on_exit dashboard_cleanup
dashboard_cleanup() {
  [ -n "${pids:-}" ] && kill $pids 2>/dev/null || true
  # A frozen server cannot stop: thaw before stopping.
  [ -n "${redis_pid:-}" ] && kill -CONT "$redis_pid" 2>/dev/null || true
  [ -n "${postmaster:-}" ] && signal_tree CONT "$postmaster" 2>/dev/null || true
  test_services_cleanup
}
test_services_throwaway dashboard
dir=$TEST_SERVICES_DIR
pids=""

if [ -z "${ORDERCAST_BIN:-}" ] || [ -z "${LOADTEST_BIN:-}" ]; then
  cargo build --quiet --locked -p ordercast -p ordercast-loadtest
  ORDERCAST_BIN=${ORDERCAST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/ordercast}
  LOADTEST_BIN=${LOADTEST_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/ordercast-loadtest}
fi

pg_port=${ORDERCAST_TEST_DATABASE_URL##*:}
pg_port=${pg_port%%/*}
createdb_if_missing "$pg_port" ordercast
redis_pid=$(cat "$dir/redis/redis.pid")
postmaster=$(head -n 1 "$dir/pg/postmaster.pid")
port=$(free_port)
admin=$(free_port)
prometheus_port=$(free_port)
secret=dashboard-test-secret-0123456789-0123456789

export ORDERCAST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/ordercast"
export ORDERCAST_REDIS_URL=$ORDERCAST_TEST_REDIS_URL
export ORDERCAST_JWT_SECRET=$secret
export ORDERCAST_LISTEN=127.0.0.1:$port ORDERCAST_ADMIN_LISTEN=127.0.0.1:$admin
export ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS=0 RUST_LOG=warn
"$ORDERCAST_BIN" migrate >"$dir/migrate.log" 2>&1
"$ORDERCAST_BIN" all >"$dir/ordercast.log" 2>&1 &
echo $! >"$dir/ordercast.pid"
pids="$pids $!"
wait_ready "127.0.0.1:$admin" "$dir/ordercast.pid" ordercast "$dir/ordercast.log"

HELM=$CHART_VENV/bin/helm "$CHART_VENV/bin/python" charts/ordercast/tests/dashboard_live.py rules "$dir/rules.yml"
cat >"$dir/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yml]
scrape_configs:
  - job_name: ordercast
    static_configs:
      - targets: ["127.0.0.1:$admin"]
        labels: {namespace: dashboard-test, pod: ordercast-0}
EOF
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$prometheus_port" >"$dir/prometheus.log" 2>&1 &
pids="$pids $!"

echo "==> dashboard: 40 s of load on one ordercast, Redis then PostgreSQL frozen 5 s"
"$LOADTEST_BIN" run --api "http://127.0.0.1:$port" --edge "http://127.0.0.1:$port" \
  --restaurants 3 --rate 5 --duration 40s --warmup 2s --settle 20s \
  --drop-share 0.3 --drop-every 10s \
  --exec "10s=kill -STOP $redis_pid" --exec "15s=kill -CONT $redis_pid" \
  --exec "25s=bash -c 'source scripts/services.sh; signal_tree STOP $postmaster'" \
  --exec "30s=bash -c 'source scripts/services.sh; signal_tree CONT $postmaster'" \
  >"$dir/loadtest.log" 2>&1 || { tail -n 30 "$dir/loadtest.log"; exit 1; }
grep -E "verification|PASSED" "$dir/loadtest.log"

echo "==> dashboard: every panel's query and every alert rule on Prometheus"
"$CHART_VENV/bin/python" charts/ordercast/tests/dashboard_live.py check \
  "http://127.0.0.1:$prometheus_port" dashboard-test
