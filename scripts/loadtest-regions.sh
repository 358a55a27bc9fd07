#!/usr/bin/env bash
# `make loadtest-regions`: the regions scenario (loadtest/scenarios/
# regions.toml) against the local two-region rig (scripts/cluster-regions.sh)
# with chaos: eu and us partitioned for 30 s, us's Redis killed and
# restarted, eu's apis killed (SIGKILL) and restarted. Uses a running
# `make cluster-regions`, or starts one and stops it afterwards. Extra
# arguments go to `ordercast-loadtest run` (e.g. `--rate 20`).
# Writes target/loadtest/regions.json and regions.html.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

SCENARIO=${LOADTEST_SCENARIO:-loadtest/scenarios/regions.toml}
OUT=${LOADTEST_OUT:-target/loadtest}
target_dir=${CARGO_TARGET_DIR:-target}
rig=scripts/cluster-regions.sh

started=""
if ! $rig status >/dev/null 2>&1; then
  $rig up
  started=1
fi
cleanup() { [ -z "$started" ] || $rig down; }
on_exit cleanup
release_build
# The tester of this build, copied: a rebuild during the run (the target
# directory may be shared) does not change it.
mkdir -p "$OUT"
cp -f "$target_dir/release/ordercast-loadtest" "$OUT/ordercast-loadtest.bin"

# The rig's regions (scripts/cluster-regions.sh): region i (eu, us, ap) has
# apis on 127.0.i.2:18081 and :18082 and an edge on 127.0.i.3:18081.
args=()
names=(eu us ap)
count=$(cat target/regions/regions)
for i in $(seq "$count"); do
  args+=(--region "${names[$((i - 1))]}=http://127.0.$i.2:18081,http://127.0.$i.2:18082@http://127.0.$i.3:18081")
done
# shellcheck disable=SC1091
ORDERCAST_JWT_SECRET=$(source target/regions/eu.env && echo "$ORDERCAST_JWT_SECRET")
export ORDERCAST_JWT_SECRET
for f in target/regions/*-api?.pid target/regions/*-edge?.pid; do args+=(--pid-file "$f"); done

# Chaos, from the start of traffic (warm-up included).
chaos=(
  --exec "20s=$rig partition eu us"
  --exec "50s=$rig heal"
  --exec "65s=$rig kill-redis us"
  --exec "70s=$rig start-redis us"
  --exec "85s=$rig kill-apis eu"
  --exec "90s=$rig start-apis eu"
)
"$OUT/ordercast-loadtest.bin" run --scenario "$SCENARIO" "${args[@]}" "${chaos[@]}" \
  --json "$OUT/regions.json" --report "$OUT/regions.html" "$@"
