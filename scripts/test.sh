#!/usr/bin/env bash
# The whole test suite: pytest against the installed pycapio (real server processes), then the
# Rust workspace's tests. Run it after `pip install ".[test]"`; README and .ci/run both call it.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k streaming -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"

# pytest exits 5 when it collects no test: with `set -e` that fails the run, as it must.
"$python" -m pytest "$@"
cargo test --workspace
