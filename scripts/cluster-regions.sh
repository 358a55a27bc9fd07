#!/usr/bin/env bash
# Several regions on one machine (docs/multi-region.md): each region a full
# cell on its own loopback addresses — PostgreSQL (wal_level=logical),
# Redis, two `ordercast api` and one `ordercast edge` — and every link
# between regions (replication both ways, forwarded writes both ways)
# through `ordercast-link`, a proxy that adds a one-way delay and can cut
# a link. Release build; state, logs and pid files in target/regions/.
# `up` copies the binaries it builds to target/regions/bin/, and every
# process of the rig (restarts included) runs those: a rebuild while the
# rig is up (CARGO_TARGET_DIR may be shared) does not mix two builds.
#
#   scripts/cluster-regions.sh up               start (REGIONS=2 or 3, LINK_DELAY=40ms)
#   scripts/cluster-regions.sh down             stop everything it started
#   scripts/cluster-regions.sh status           exit 0 when every process is up
#   scripts/cluster-regions.sh loadtest-args    the rig as ordercast-loadtest's --region arguments
#   scripts/cluster-regions.sh partition A B    cut every link between regions A and B
#   scripts/cluster-regions.sh heal             restore every link
#   scripts/cluster-regions.sh delay MS         one-way delay of every link
#   scripts/cluster-regions.sh kill-region R    SIGKILL R's apis, edge, Redis and PostgreSQL
#   scripts/cluster-regions.sh start-region R
#   scripts/cluster-regions.sh kill-redis R / start-redis R
#   scripts/cluster-regions.sh kill-apis R / start-apis R
#
# Region i (eu=1, us=2, ap=3) lives on 127.0.i.x: PostgreSQL 127.0.i.1:15432,
# Redis 127.0.i.1:16379, apis 127.0.i.2:18081 and :18082, edge
# 127.0.i.3:18081 (admin ports +1000). Region t reaches region f's
# PostgreSQL at 127.0.t.9:1543f and its api at 127.0.t.9:1808f, through
# the link named f-t-pg (rows from f to t) or t-f-api (writes from t to f).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

dir=$PWD/target/regions
# The binaries cargo builds (CARGO_TARGET_DIR when set, as `release_build`
# honours it too).
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
case $target_dir in /*) ;; *) target_dir=$PWD/$target_dir ;; esac
bin=$dir/bin/ordercast
link_bin=$dir/bin/ordercast-link
control=127.0.0.1:19999
names=(eu us ap)

count() { cat "$dir/regions" 2>/dev/null || echo "${REGIONS:-2}"; }
index_of() { # name → 1-based index
  local i
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { echo $((i + 1)); return; }; done
  echo "unknown region $1 (one of: ${names[*]:0:$(count)})" >&2; exit 2
}
regions() { echo "${names[@]:0:$(count)}"; }

peers_json() { # region → ORDERCAST_PEERS
  local t f out="" ti fi
  t=$1; ti=$(index_of "$t")
  for f in $(regions); do
    [ "$f" = "$t" ] && continue
    fi=$(index_of "$f")
    out+="${out:+,}{\"region\":\"$f\",\"api\":\"http://127.0.$ti.9:1808$fi\",\"database\":\"postgres://postgres@127.0.$ti.9:1543$fi/ordercast\"}"
  done
  echo "[$out]"
}

env_of() { # region → the environment of its processes
  local r=$1 i; i=$(index_of "$r")
  cat <<ENV
export ORDERCAST_REGION=$r
export ORDERCAST_PEERS='$(peers_json "$r")'
export ORDERCAST_DATABASE_URL=postgres://postgres@127.0.$i.1:15432/ordercast
export ORDERCAST_REDIS_URL=redis://127.0.$i.1:16379
export ORDERCAST_JWT_SECRET=$(cat "$dir/jwt-secret")
# /debug/* on the admin ports: curl -H "Authorization: Bearer \$ORDERCAST_ADMIN_TOKEN" …
export ORDERCAST_ADMIN_TOKEN=$(cat "$dir/jwt-secret")-admin
# The load tester's screens all come from one address per region.
export ORDERCAST_MAX_CONNECTIONS_PER_ADDRESS=0
ENV
}

start_proc() { # region kind n
  local r=$1 kind=$2 n=$3 i host port admin name
  i=$(index_of "$r")
  case $kind in api) host=127.0.$i.2 ;; edge) host=127.0.$i.3 ;; esac
  port=$((18080 + n)); admin=$((port + 1000)); name=$r-$kind$n
  (
    # shellcheck disable=SC1090
    source "$dir/$r.env"
    ORDERCAST_LISTEN="$host:$port" ORDERCAST_ADMIN_LISTEN="$host:$admin" \
      RUST_LOG=${RUST_LOG:-warn} ORDERCAST_LOG_FORMAT=json \
      setsid "$bin" "$kind" >>"$dir/$name.log" 2>&1 < /dev/null &
    echo $! > "$dir/$name.pid"
  )
  wait_ready "$host:$admin" "$dir/$name.pid" "$name" "$dir/$name.log"
}

stop_pidfile() { # file [signal]
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -"${2:-TERM}" "$pid" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$f"
}

start_data() { # region: its PostgreSQL and Redis
  local r=$1 i; i=$(index_of "$r")
  postgres_start "$dir/$r-pg" 15432 durable "127.0.$i.1" \
    "-c wal_level=logical -c wal_retrieve_retry_interval=1s -c max_slot_wal_keep_size=2GB"
  createdb_if_missing 15432 ordercast "127.0.$i.1"
  redis_start "$dir/$r-redis" 16379 "127.0.$i.1"
}

start_apis() { start_proc "$1" api 1; start_proc "$1" api 2; }
stop_apis() { stop_pidfile "$dir/$1-api1.pid" "${2:-TERM}"; stop_pidfile "$dir/$1-api2.pid" "${2:-TERM}"; }

start_links() {
  local args=() f t fi ti
  for f in $(regions); do
    for t in $(regions); do
      [ "$f" = "$t" ] && continue
      fi=$(index_of "$f"); ti=$(index_of "$t")
      args+=(--link "$f-$t-pg=127.0.$ti.9:1543$fi>127.0.$fi.1:15432")
      args+=(--link "$t-$f-api=127.0.$ti.9:1808$fi>127.0.$fi.2:18081")
    done
  done
  setsid "$link_bin" --control "$control" --delay "${LINK_DELAY:-40ms}" "${args[@]}" \
    >>"$dir/links.log" 2>&1 < /dev/null &
  echo $! > "$dir/links.pid"
  for _ in $(seq 100); do
    curl -fs "http://$control/links" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "ordercast-link did not start; see $dir/links.log" >&2
  return 1
}

links() { # method path
  curl -fsS -X "$1" "http://$control/links/$2" >/dev/null
}

up() {
  if status >/dev/null 2>&1; then
    echo "the regions are already up"; show; return 0
  fi
  services_install
  release_build
  mkdir -p "$dir/bin"; chmod 755 "$dir"
  local b
  for b in ordercast ordercast-link; do
    cp -f "$target_dir/release/$b" "$dir/bin/$b.new" && mv -f "$dir/bin/$b.new" "$dir/bin/$b"
  done
  echo "${REGIONS:-2}" > "$dir/regions"
  [ "$(count)" = 2 ] || [ "$(count)" = 3 ] || { echo "REGIONS must be 2 or 3" >&2; exit 2; }
  [ -f "$dir/jwt-secret" ] || head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$dir/jwt-secret"
  local r
  for r in $(regions); do env_of "$r" > "$dir/$r.env"; done
  start_links
  for r in $(regions); do start_data "$r"; done
  # Publications first everywhere, then the subscriptions (each waits for
  # its peer's publication): migrate twice round.
  for _ in 1 2; do
    for r in $(regions); do (source "$dir/$r.env"; RUST_LOG=warn "$bin" migrate); done
  done
  for r in $(regions); do start_apis "$r"; start_proc "$r" edge 1; done
  show
}

show() {
  local r i
  echo
  echo "  Ordercast regions (state and logs in target/regions/; links delayed ${LINK_DELAY:-40ms} each way):"
  for r in $(regions); do
    i=$(index_of "$r")
    echo "    $r: apis http://127.0.$i.2:18081 http://127.0.$i.2:18082, edge http://127.0.$i.3:18081 (admin +1000)"
  done
  cat <<MSG
    environment of region R: source target/regions/R.env
    links: curl http://$control/links      partition: $0 partition eu us      heal: $0 heal
    load test: make loadtest-regions       stop: make cluster-regions-stop

MSG
}

down() {
  local r f
  for r in $(regions); do
    stop_pidfile "$dir/$r-edge1.pid"; stop_apis "$r"
  done
  for r in $(regions); do
    postgres_stop "$dir/$r-pg"; redis_stop "$dir/$r-redis"
  done
  stop_pidfile "$dir/links.pid"
  for f in "$dir"/*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  return 0
}

status() {
  local r f
  [ -f "$dir/links.pid" ] && kill -0 "$(cat "$dir/links.pid")" 2>/dev/null || { echo "links are down"; return 1; }
  for r in $(regions); do
    for f in "$r-api1" "$r-api2" "$r-edge1"; do
      [ -f "$dir/$f.pid" ] && kill -0 "$(cat "$dir/$f.pid")" 2>/dev/null || { echo "$f is down"; return 1; }
    done
  done
  echo "the regions are up"
}

kill_region() {
  local r=$1
  stop_pidfile "$dir/$r-edge1.pid" KILL; stop_apis "$r" KILL
  stop_pidfile "$dir/$r-redis/redis.pid" KILL
  local pg_pid
  pg_pid=$(head -n 1 "$dir/$r-pg/postmaster.pid" 2>/dev/null || true)
  [ -z "$pg_pid" ] || kill -KILL "$pg_pid" 2>/dev/null || true
}

start_region() {
  local r=$1
  # A PostgreSQL killed with SIGKILL leaves its pid file; pg_ctl sees the
  # process gone and starts it (crash recovery) anyway.
  start_data "$r"
  start_apis "$r"; start_proc "$r" edge 1
}

# One `ordercast-loadtest` argument a line: `--region NAME=APIS@EDGE` for
# every region of the rig.
loadtest_args() {
  local r i
  for r in $(regions); do
    i=$(index_of "$r")
    printf -- '--region\n%s=http://127.0.%s.2:18081,http://127.0.%s.2:18082@http://127.0.%s.3:18081\n' "$r" "$i" "$i" "$i"
  done
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  loadtest-args) loadtest_args ;;
  partition) index_of "$2" >/dev/null; index_of "$3" >/dev/null
    links POST "$2-$3*/cut"; links POST "$3-$2*/cut" ;;
  heal) links POST all/heal ;;
  delay) links PUT "all/delay?ms=$2" ;;
  kill-region) kill_region "$2" ;;
  start-region) start_region "$2" ;;
  kill-redis) i=$(index_of "$2"); redis-cli -h "127.0.$i.1" -p 16379 shutdown nosave >/dev/null 2>&1 || true ;;
  start-redis) i=$(index_of "$2"); redis_start "$dir/$2-redis" 16379 "127.0.$i.1" ;;
  kill-apis) stop_apis "$2" KILL ;;
  start-apis) start_apis "$2" ;;
  *) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 2 ;;
esac
