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

cluster_use_or_start $rig
release_build
# The tester of this build, copied: a rebuild during the run (the target
# directory may be shared) does not change it.
mkdir -p "$OUT"
cp -f "$target_dir/release/ordercast-loadtest" "$OUT/ordercast-loadtest.bin"

# The rig's regions, its apis and edges, as `--region` arguments.
mapfile -t args < <($rig loadtest-args)
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
