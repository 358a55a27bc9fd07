#!/usr/bin/env bash
# The browser client and the demo screens: the client's unit tests (Node's
# test runner), then headless Chromium (playwright-core driving Debian's
# chromium) against real `ordercast api` and `ordercast edge` processes.
# The last step of `make test`, which provides PostgreSQL and Redis
# (ORDERCAST_TEST_DATABASE_URL, ORDERCAST_TEST_REDIS_URL); run alone, it
# starts throw-away ones itself. Screenshots: target/browser-artifacts/.
# Stops everything it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  _sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tests_pid=""
cleanup() {
  # The test runner kills its servers and browser itself; this catches the
  # rest if it was interrupted (it runs in a process group of its own).
  if [ -n "$tests_pid" ]; then kill -- -"$tests_pid" 2>/dev/null || true; fi
  test_services_cleanup
}
on_exit cleanup

if [ -z "${ORDERCAST_TEST_DATABASE_URL:-}" ] || [ -z "${ORDERCAST_TEST_REDIS_URL:-}" ]; then
  test_services_throwaway browser
fi

echo "==> npm ci (web/)"
(cd web && npm ci --no-audit --no-fund --loglevel=error)
# Built as the test step builds it (the same features), so after `make
# test`'s cargo tests this is a no-op where `cargo build` would rebuild.
echo "==> ordercast binary"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-run --cargo-quiet
else
  cargo test --workspace --locked --no-run --quiet
fi
export ORDERCAST_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/ordercast"

echo "==> client unit tests (node --test)"
(cd web && node --test test/unit/)

echo "==> browser tests (headless Chromium)"
rm -rf target/browser-artifacts
cd web
setsid node --test --test-concurrency=1 test/browser/ &
tests_pid=$!
status=0
wait "$tests_pid" || status=$?
tests_pid=""
cd ..
echo "==> screenshots: $(ls target/browser-artifacts/*.png 2>/dev/null | tr '\n' ' ')"
exit "$status"
