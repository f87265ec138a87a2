#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages some tests need, installed once when missing (needs root, or sudo):
# - chromium + chromium-driver: the status page test (tests/status_page.rs) drives headless
#   Chromium through chromedriver;
# - python3-prometheus-client: the OpenMetrics reference parser (the Prometheus project's Python
#   client, ~200 KB) lints GET /metrics in tests/metrics.rs (that lint is skipped without it);
# - gammu + smstools: AT clients nobody here wrote, run against the modem simulator in
#   tests/mature_clients.rs (skipped with a printed reason only when they cannot be installed).
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || need+=(python3-prometheus-client)
command -v gammu >/dev/null 2>&1 || need+=(gammu)
[ -x /usr/sbin/smsd ] || command -v smsd >/dev/null 2>&1 || need+=(smstools)
if [ "${#need[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "test.sh: installing ${need[*]} for the tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >/dev/null
fi

# Everything else the tests need comes from Cargo (dev-dependencies).
# `fault-injection` compiles in the fault points the failure tests arm (src/fault.rs).
cargo test --all-targets --locked --features fault-injection
# The pair (feature `ha`): its own unit tests against a real etcd (the official binary from the
# etcd-bin-vendored dev-dependency), and the two-box scenarios S1-S18 in network namespaces
# (tests/ha_pair.rs, about two minutes; as root only, skipped with the reason otherwise).
cargo test --locked --features fault-injection,ha --lib -- ha:: store::pair health::
cargo test --locked --features fault-injection,ha --test ha_pair
