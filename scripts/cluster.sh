#!/usr/bin/env bash
# A local cluster on loopback: PostgreSQL (default durability), Redis, two
# `ordercast api` and two `ordercast edge` processes, release build. State,
# logs and pid files live in target/cluster/.
#
#   scripts/cluster.sh up              start everything (in the background)
#   scripts/cluster.sh down            stop everything it started
#   scripts/cluster.sh status          exit 0 when the cluster is up
#   scripts/cluster.sh kill-edge N     SIGKILL edge N (1 or 2): a crash
#   scripts/cluster.sh start-edge N    start edge N again
#   scripts/cluster.sh kill-api N / start-api N
#   scripts/cluster.sh freeze-redis    SIGSTOP Redis: it hangs, connections stay open
#   scripts/cluster.sh thaw-redis      SIGCONT Redis
#   scripts/cluster.sh freeze-postgres SIGSTOP PostgreSQL (postmaster and every backend)
#   scripts/cluster.sh thaw-postgres   SIGCONT PostgreSQL
#
# A frozen dependency is thawed by `down` too.
# Ports: CLUSTER_PORT_BASE (default 18000) + 432 PostgreSQL, + 379 Redis,
# + 81/82 apis (admin + 91/92), + 181/182 edges (admin + 191/192).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

dir=$PWD/target/cluster
base=${CLUSTER_PORT_BASE:-18000}
pg_port=$((base + 432))
redis_port=$((base + 379))
bin=$PWD/target/release/ordercast

port_of() { # kind n → public port
  case $1 in api) echo $((base + 80 + $2)) ;; edge) echo $((base + 180 + $2)) ;; esac
}

start_proc() { # kind n
  local kind=$1 n=$2 port admin
  port=$(port_of "$kind" "$n")
  admin=$((port + 10))
  # shellcheck disable=SC1091
  source "$dir/env"
  ORDERCAST_LISTEN="127.0.0.1:$port" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin" \
    RUST_LOG=${RUST_LOG:-warn} ORDERCAST_LOG_FORMAT=json \
    setsid "$bin" "$kind" >>"$dir/$kind$n.log" 2>&1 < /dev/null &
  echo $! > "$dir/$kind$n.pid"
  wait_ready "127.0.0.1:$admin" "$dir/$kind$n.pid" "$kind $n" "$dir/$kind$n.log"
}

stop_proc() { # kind n signal
  local f=$dir/$1$2.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -"${3:-TERM}" "$pid" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$f"
}

redis_pid() { cat "$dir/redis/redis.pid"; }
postmaster_pid() { head -n 1 "$dir/pg/postmaster.pid"; }

up() {
  if status >/dev/null 2>&1; then
    echo "the cluster is already up"; show; return 0
  fi
  services_install
  release_build
  mkdir -p "$dir"
  chmod 755 "$dir"
  postgres_start "$dir/pg" "$pg_port"
  createdb_if_missing "$pg_port" ordercast
  redis_start "$dir/redis" "$redis_port"
  [ -f "$dir/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/jwt-secret"
  cat > "$dir/env" <<ENV
export ORDERCAST_DATABASE_URL=postgres://postgres@127.0.0.1:$pg_port/ordercast
export ORDERCAST_REDIS_URL=redis://127.0.0.1:$redis_port
export ORDERCAST_JWT_SECRET=$(cat "$dir/jwt-secret")
# /debug/* on the admin ports: curl -H "Authorization: Bearer \$ORDERCAST_ADMIN_TOKEN" …
export ORDERCAST_ADMIN_TOKEN=$(cat "$dir/jwt-secret")-admin
# The load tester's thousands of screens all come from 127.0.0.1.
export ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS=0
export CLUSTER_APIS="http://127.0.0.1:$(port_of api 1) http://127.0.0.1:$(port_of api 2)"
export CLUSTER_EDGES="http://127.0.0.1:$(port_of edge 1) http://127.0.0.1:$(port_of edge 2)"
ENV
  # shellcheck disable=SC1091
  source "$dir/env"
  "$bin" migrate
  for n in 1 2; do start_proc api $n; start_proc edge $n; done
  show
}

show() {
  cat <<MSG

  Ordercast cluster (state and logs in target/cluster/):
    apis:   http://127.0.0.1:$(port_of api 1)  http://127.0.0.1:$(port_of api 2)   (metrics on +10: $(( $(port_of api 1) + 10 )), $(( $(port_of api 2) + 10 )))
    edges:  http://127.0.0.1:$(port_of edge 1)  http://127.0.0.1:$(port_of edge 2)   (metrics on +10: $(( $(port_of edge 1) + 10 )), $(( $(port_of edge 2) + 10 )))
    PostgreSQL 127.0.0.1:$pg_port, Redis 127.0.0.1:$redis_port
    environment (JWT secret, URLs): source target/cluster/env
    load test: make loadtest        stop: make cluster-stop

MSG
}

down() {
  for n in 1 2; do stop_proc edge $n; stop_proc api $n; done
  # A stopped server would not act on the signals that stop it.
  [ -f "$dir/redis/redis.pid" ] && signal_tree CONT "$(redis_pid)" 2>/dev/null || true
  [ -f "$dir/pg/postmaster.pid" ] && signal_tree CONT "$(postmaster_pid)" 2>/dev/null || true
  postgres_stop "$dir/pg"
  redis_stop "$dir/redis"
}

status() {
  local f
  for f in api1 api2 edge1 edge2; do
    [ -f "$dir/$f.pid" ] && kill -0 "$(cat "$dir/$f.pid")" 2>/dev/null || { echo "$f is down"; return 1; }
  done
  echo "the cluster is up"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  kill-edge) stop_proc edge "$2" KILL ;;
  start-edge) start_proc edge "$2" ;;
  kill-api) stop_proc api "$2" KILL ;;
  start-api) start_proc api "$2" ;;
  freeze-redis) signal_tree STOP "$(redis_pid)" ;;
  thaw-redis) signal_tree CONT "$(redis_pid)" ;;
  freeze-postgres) signal_tree STOP "$(postmaster_pid)" ;;
  thaw-postgres) signal_tree CONT "$(postmaster_pid)" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
