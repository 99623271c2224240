#!/usr/bin/env bash
# Streaming through CAPIO-CL, with one command:
#
#     examples/capio_cl_streaming/run.sh [WORK_DIR]
#
# capio_cl.json declares series.csv "no_update" + "on_close": the consumer (started first) reads
# each chunk as soon as the producer has flushed it, and summarises chunk k while the producer
# computes chunk k+1. series.csv lives only in memory (it is not "permanent"); summary.txt is
# permanent and is on disk when the workflow ends. Neither step imports pycapio.
# Exits non-zero if the consumer did not read exactly what the producer wrote, or did not overlap
# with it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../_run_pair.sh
. "$here/../_run_pair.sh"
run_pair capio_cl_streaming series.csv "${1:-}"  # the workflow name is the "name" in capio_cl.json

"$python" - "$work" "$capio_dir" <<'PY'
import pathlib, sys

work, capio_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
produced = (work / "producer.out").read_text().splitlines()
consumed = (work / "consumer.out").read_text().splitlines()
finished_at = float(produced[-1].split("=")[1])
times = [float(line.split("=")[1]) for line in consumed[1:]]
overlapped = sum(t < finished_at for t in times)
print(f"producer: {produced[0]}")
print(f"consumer: {consumed[0]}")
print(f"chunks the consumer had processed before the producer finished: {overlapped} of {len(times)}")
print("summary.txt (first lines, on disk):")
summary = (capio_dir / "summary.txt").read_text().splitlines()
print("\n".join("    " + line for line in summary[:3]))
if produced[0] != consumed[0]:
    sys.exit("MISMATCH: the consumer did not read what the producer wrote")
if overlapped == 0:
    sys.exit("NO STREAMING: the consumer processed nothing while the producer was running")
if len(summary) != len(times) or (capio_dir / "series.csv").exists():
    sys.exit("UNEXPECTED FILES: summary.txt should be on disk, series.csv (not permanent) should not")
print(f"OK: streamed {len(times)} chunks; series.csv stayed in memory, summary.txt is on disk")
PY
