#!/usr/bin/env bash
# Installs what the tests need and runs the whole suite: formatting, lints, every
# crate's tests and the end-to-end tests (real grove, git, bubblewrap; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# The official Platform.sh config reader, which the config tests run against Grove's
# variables.
if [ ! -d target/python/platformshconfig ]; then
  python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
    --target target/python platformshconfig
fi
export GROVE_PYTHONPATH="$PWD/target/python"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
