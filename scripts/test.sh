#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Everything the tests need comes from Cargo (dev-dependencies); nothing to install yet beyond
# the Rust toolchain itself.
cargo test --all-targets --locked
