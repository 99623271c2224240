#!/usr/bin/env bash
# Directory streaming through CAPIO-CL, with one command:
#
#     examples/directory_streaming/run.sh [WORK_DIR]
#
# capio_cl.json declares the directory tiles/ "on_n_files" (8) + "no_update": the consumer
# (started first) iterates os.scandir(tiles) and processes each tile as soon as the producer has
# written it; the iteration ends when the 8th tile exists. The tiles live only in memory (they are
# not "permanent"); report.txt is permanent and is on disk when the workflow ends. Neither step
# imports pycapio. Exits non-zero if the consumer did not read exactly what the producer wrote, or
# did not overlap with it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../_run_pair.sh
. "$here/../_run_pair.sh"
run_pair directory_streaming tiles "${1:-}"  # the workflow name is the "name" in capio_cl.json

"$python" - "$work" "$capio_dir" <<'PY'
import pathlib, sys

work, capio_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
produced = (work / "producer.out").read_text().splitlines()
consumed = (work / "consumer.out").read_text().splitlines()
finished_at = float(produced[-1].split("=")[1])
done = [line.split(" processed_at=") for line in consumed[1:]]
overlapped = sum(float(t) < finished_at for _, t in done)
print(f"producer: {produced[0]}")
print(f"consumer: {consumed[0]}")
print(f"files the consumer had processed before the producer finished: {overlapped} of {len(done)}")
print("report.txt (first lines, on disk):")
report = (capio_dir / "report.txt").read_text().splitlines()
print("\n".join("    " + line for line in report[:3]))
if produced[0] != consumed[0]:
    sys.exit("MISMATCH: the consumer did not read what the producer wrote")
if overlapped == 0:
    sys.exit("NO STREAMING: the consumer processed nothing while the producer was running")
if len(report) != len(done) or (capio_dir / "tiles").exists():
    sys.exit("UNEXPECTED FILES: report.txt should be on disk, tiles/ (not permanent) should not")
print(f"OK: processed {len(done)} files as they appeared; tiles/ stayed in memory, report.txt is on disk")
PY
