#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything the tests need comes from Cargo (dev-dependencies); nothing to install yet beyond
# the Rust toolchain itself.
# The OpenMetrics reference parser (the Prometheus project's Python client, ~200 KB) lints
# GET /metrics in tests/metrics.rs; that test skips the lint where it cannot be installed.
if ! /usr/bin/python3 -c 'import prometheus_client' 2>/dev/null && command -v apt-get >/dev/null \
    && [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-prometheus-client >/dev/null; } \
        || echo "test.sh: python3-prometheus-client not installed; the /metrics lint is skipped"
fi
cargo test --all-targets --locked
