#!/usr/bin/env bash
# `make loadtest`: the default scenario (loadtest/scenarios/default.toml)
# against the local cluster. Uses a running `make cluster`, or starts one
# and stops it afterwards. Extra arguments go to `ordercast-loadtest run`
# (e.g. `make loadtest ARGS='--rate 50 --duration 30s'`).
# Writes target/loadtest/report.json and report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

SCENARIO=${LOADTEST_SCENARIO:-loadtest/scenarios/default.toml}
OUT=${LOADTEST_OUT:-target/loadtest}

cluster_use_or_start scripts/cluster.sh
release_build
# shellcheck disable=SC1091
source target/cluster/env

args=()
for u in $CLUSTER_APIS; do args+=(--api "$u"); done
for u in $CLUSTER_EDGES; do args+=(--edge "$u"); done
for f in edge1 edge2 api1 api2; do args+=(--pid-file "target/cluster/$f.pid"); done
mkdir -p "$OUT"
target/release/ordercast-loadtest run --scenario "$SCENARIO" "${args[@]}" \
  --json "$OUT/report.json" --report "$OUT/report.html" "$@"
