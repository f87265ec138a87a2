#!/usr/bin/env bash
# Run before every commit: the same gates as CI, minus the full test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all
cargo clippy --all-targets -- -D warnings
