#!/usr/bin/env bash
# `make test`: throw-away PostgreSQL + Redis on free loopback ports, then
# fmt check, clippy and every test (Rust, the Helm chart's, the dashboard's
# against a real Prometheus, the browser client's). Stops what it started,
# whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

on_exit test_services_cleanup
test_services_throwaway test

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
bash scripts/chart.sh
bash scripts/dashboard-test.sh
echo "==> browser client and screens"
bash scripts/browser-test.sh
