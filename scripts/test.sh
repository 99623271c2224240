#!/usr/bin/env bash
# The whole test suite: pytest against the installed pycapio (real server processes), then the
# Rust workspace's tests. Run it after `pip install ".[test]"`; README and .ci/run both call it.
# Extra arguments go to pytest (e.g. `scripts/test.sh -k streaming -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# pytest exits 5 when it collects no test: with `set -e` (and pipefail) that fails the run.
"$python" -m pytest "$@" 2>&1 | tee "$log"
cargo test --workspace 2>&1 | tee -a "$log"

# One closing line over both runners, so the total is plain at the end of the output.
"$python" - "$log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
passed = failed = 0
for line in text.splitlines():
    if line.startswith("test result:"):  # cargo: "test result: ok. 14 passed; 0 failed; ..."
        passed += int(re.search(r"(\d+) passed", line).group(1))
        failed += int(re.search(r"(\d+) failed", line).group(1))
    # pytest's summary line, with or without -q: "=== 3 failed, 140 passed in 9.1s ===".
    elif re.match(r"^=*\s*\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b.* in [\d.]+s", line):
        for n, word in re.findall(r"(\d+) (passed|failed|errors?)\b", line):
            passed += int(n) if word == "passed" else 0
            failed += int(n) if word != "passed" else 0
print(f"total: {passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
PY
