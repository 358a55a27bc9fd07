#!/usr/bin/env bash
# `make bench-scale`: the scale and memory targets of docs/performance.md
# "Scale" on this machine. Release build, PostgreSQL at its default
# durability (WAL warmed), Redis, custom events (`x.bench`, 256-byte data,
# kitchen audience) published with `POST …/events` through one api.
#
#   screens  SCALE_SCREENS (50000) screens, half SSE and half WebSocket,
#            over SCALE_EDGES (4) `ordercast edge` processes, driven by
#            SCALE_TESTERS (4) load testers: each has its own restaurants
#            (SCALE_RESTAURANTS in all, 1000), its share of SCALE_RATE (100)
#            events/s and its own exactly-once check, and spreads its
#            screens over every edge. A process may open 20,000 files
#            here, so one tester holds at most ~19,000 screens and one edge
#            ~17,000 (ORDERCAST_MAX_CONNECTIONS below).
#   memory   MEMORY_SCREENS (15000) screens (MEMORY_TRANSPORTS, sse=1)
#            on ONE edge of the split layout (one api, one edge),
#            MEMORY_RATE (200) events/s over 100 restaurants; the edge's
#            peak RSS beside the Helm chart's memory limit for the edge,
#            and its RSS MEMORY_LINGER (60s) after the load.
#
# SCALE_STEPS ("screens memory"), SCALE_DURATION (60s), SCALE_RAMP (30s),
# SCALE_TRANSPORTS (the screens step's mix, sse=1,ws=1) override;
# SCALE_TESTER_ARGS adds flags to the screens step's testers (e.g. chaos:
# "--drop-share 1 --drop-every 15s"). Writes target/bench/scale-<step>-*.json and the summary of the
# steps there to target/bench/scale.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

STEPS=${SCALE_STEPS:-screens memory}
SCREENS=${SCALE_SCREENS:-50000}
EDGES=${SCALE_EDGES:-4}
TESTERS=${SCALE_TESTERS:-4}
RESTAURANTS=${SCALE_RESTAURANTS:-1000}
RATE=${SCALE_RATE:-100}
DURATION=${SCALE_DURATION:-60s}
RAMP=${SCALE_RAMP:-30s}
TRANSPORTS=${SCALE_TRANSPORTS:-sse=1,ws=1}
read -r -a TESTER_ARGS <<<"${SCALE_TESTER_ARGS:-}"
MEMORY_SCREENS=${MEMORY_SCREENS:-15000}
MEMORY_RATE=${MEMORY_RATE:-200}
MEMORY_LINGER=${MEMORY_LINGER:-60s}
MEMORY_TRANSPORTS=${MEMORY_TRANSPORTS:-sse=1}

if [ $((RESTAURANTS % TESTERS)) -ne 0 ] || [ $((SCREENS % RESTAURANTS)) -ne 0 ]; then
  echo "SCALE_RESTAURANTS must divide by SCALE_TESTERS, SCALE_SCREENS by SCALE_RESTAURANTS" >&2
  exit 1
fi
if [ "$(ulimit -Hn)" != unlimited ] && [ $((SCREENS / TESTERS + 1000)) -gt "$(ulimit -Hn)" ]; then
  echo "$((SCREENS / TESTERS)) screens per tester do not fit the open-files limit ($(ulimit -Hn)); raise SCALE_TESTERS" >&2
  exit 1
fi
ulimit -n "$(ulimit -Hn)"
# The edge's memory limit in the Helm chart (edge.resources.limits.memory).
chart_limit=$(awk '/^edge:/ { edge = 1 } edge && /limits:/ {
  match($0, /memory: *[0-9]+[KMG]i/); print substr($0, RSTART + 8, RLENGTH - 8); exit }' \
  charts/ordercast/values.yaml | tr -d ' ')

services_install
work=$(mktemp -d /tmp/ordercast-scale.XXXXXX)
chmod 755 "$work"
pids=(); names=()
sampler=""
stop_servers() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  pids=(); names=()
}
cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  stop_servers
  services_stop
  rm -rf "$work"
}
on_exit cleanup

release_build

bench_services "$work"
target/release/ordercast migrate

# start ROLE NAME — one server of ROLE on fresh ports, logging to
# $work/NAME.log; sets $base and $admin and appends its pid to $pids. An
# edge may hold 17,000 streams and 2,000 other connections: 19,000 of the
# 20,000 files a process may open here (the default leaves ~14,800 streams).
start() {
  local role=$1 name=$2 port admin_port
  port=$(free_port); admin_port=$(free_port)
  ORDERCAST_LISTEN="127.0.0.1:$port" ORDERCAST_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    ORDERCAST_MAX_CONNECTIONS=17000 ORDERCAST_MAX_PENDING_CONNECTIONS=2000 \
    target/release/ordercast "$role" >"$work/$name.log" 2>&1 &
  pids+=($!); names+=("$name")
  echo $! >"$work/$name.pid"
  wait_ready "127.0.0.1:$admin_port" "$work/$name.pid" "ordercast $name" "$work/$name.log"
  base="http://127.0.0.1:$port"
  admin="127.0.0.1:$admin_port"
}

# sample OUT "ADMIN…" "PID…" — every 2 s until killed, one line to OUT
# (after the header the caller wrote): the time, the machine's idle and
# total CPU ticks, each edge's open streams (ordercast_connections), then
# RSS KiB and CPU ticks of each PID.
sample() {
  local out=$1 admins=$2 procs=$3 line a p
  while :; do
    line="$(date +%s.%N) $(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)"
    for a in $admins; do
      line="$line $(curl -fs --max-time 1 "http://$a/metrics" |
        awk '/^ordercast_connections\{/ { s += $2 } END { print s + 0 }')"
    done
    for p in $procs; do
      line="$line $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)"
      line="$line $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)"
    done
    echo "$line" >>"$out"
    sleep 2
  done
}

# testers OUT_PREFIX N PROCESS_FLAGS -- FLAGS… — N load testers at once,
# tester k with its own restaurants and 1/N of the rate, and the edges in
# its own rotation (so every edge gets both transports); the first one
# samples the server processes (PROCESS_FLAGS). Sets $tester_pids; waits
# for them and returns non-zero if any failed.
run_testers() {
  local prefix=$1 n=$2 process_flags=$3 k i rotated failed=0
  shift 4
  tester_pids=()
  for k in $(seq 0 $((n - 1))); do
    rotated=()
    for i in $(seq 0 $((${#edges[@]} - 1))); do
      rotated+=(--edge "${edges[$(((i + k) % ${#edges[@]}))]}")
    done
    local own=()
    [ "$k" -gt 0 ] || read -r -a own <<<"$process_flags"
    target/release/ordercast-loadtest run --api "$api" "${rotated[@]}" \
      --jwt-secret "$ORDERCAST_JWT_SECRET" "$@" "${own[@]}" \
      --json "$prefix-$((k + 1)).json" --quiet >"$work/tester-$((k + 1)).log" 2>&1 &
    tester_pids+=($!)
  done
  {
    echo "# edges: ${names[*]:1}"
    echo "# processes: ${names[*]} $(seq -f 'tester%g' -s ' ' "$n")"
  } >"$prefix-samples.txt"
  sample "$prefix-samples.txt" "${admins[*]}" "${pids[*]} ${tester_pids[*]}" &
  sampler=$!
  for k in "${!tester_pids[@]}"; do
    if ! wait "${tester_pids[$k]}"; then
      failed=1
      echo "tester $((k + 1)) failed:" >&2
      tail -n 20 "$work/tester-$((k + 1)).log" >&2
    fi
  done
  kill "$sampler" 2>/dev/null || true
  sampler=""
  return $failed
}

mkdir -p target/bench
status=0
for step in $STEPS; do
  stop_servers
  rm -f target/bench/scale-"$step"-*
  edges=(); admins=()
  start api api; api=$base
  case $step in
    screens)
      for e in $(seq "$EDGES"); do
        start edge "edge$e"; edges+=("$base"); admins+=("$admin")
      done
      echo "==> $SCREENS screens ($TRANSPORTS) over $EDGES edges, $TESTERS testers," \
        "$RESTAURANTS restaurants, $RATE events/s for $DURATION"
      process_flags=""
      for pid in "${pids[@]}"; do process_flags+=" --pid $pid"; done
      run_testers target/bench/scale-screens "$TESTERS" "$process_flags --pid-tree $pg_pid" -- \
        --restaurants $((RESTAURANTS / TESTERS)) --kitchens $((SCREENS / RESTAURANTS)) \
        --owners 0 --waiters 0 --customers 0 --transports "$TRANSPORTS" \
        --lifecycle publish --payload-bytes 256 \
        --rate "$(python3 -c "print($RATE / $TESTERS)")" --notification-rate 0 \
        --ramp "$RAMP" --warmup 5s --duration "$DURATION" "${TESTER_ARGS[@]}" || status=1
      ;;
    memory)
      start edge edge; edges=("$base"); admins=("$admin")
      echo "==> $MEMORY_SCREENS screens ($MEMORY_TRANSPORTS) on one edge, $MEMORY_RATE events/s over 100" \
        "restaurants for $DURATION, RSS $MEMORY_LINGER after (chart limit: $chart_limit)"
      run_testers target/bench/scale-memory 1 "--pid ${pids[0]} --pid ${pids[1]} --pid-tree $pg_pid" -- \
        --restaurants 100 --kitchens $((MEMORY_SCREENS / 100)) \
        --owners 0 --waiters 0 --customers 0 --transports "$MEMORY_TRANSPORTS" \
        --lifecycle publish --payload-bytes 256 --rate "$MEMORY_RATE" --notification-rate 0 \
        --ramp "$RAMP" --warmup 5s --duration "$DURATION" --linger "$MEMORY_LINGER" || status=1
      ;;
    *) echo "unknown step $step (screens, memory)" >&2; exit 1 ;;
  esac
  # The servers' logs (warnings and errors only, RUST_LOG=warn) are kept
  # beside the reports.
  for name in "${names[@]}"; do
    cp "$work/$name.log" "target/bench/scale-$step-$name.log"
    if grep -q . "$work/$name.log"; then
      echo "--- $name: $(wc -l <"$work/$name.log") lines in target/bench/scale-$step-$name.log; the last:"
      tail -n 3 "$work/$name.log"
    fi
  done
done
stop_servers

python3 scripts/bench-scale-summary.py --chart-limit "$chart_limit" target/bench >target/bench/scale.json
python3 scripts/bench-scale-summary.py --chart-limit "$chart_limit" --table target/bench
echo "==> target/bench/scale.json"
exit $status
