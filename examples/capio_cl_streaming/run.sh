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
python="${PYTHON:-python3}"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
capio_dir="$work/capio"
workflow="capio_cl_streaming"  # the "name" in capio_cl.json
mkdir -p "$capio_dir"

run_step() {  # app_name script [args...]
    local app="$1"
    shift
    "$python" -m pycapio --capio-dir "$capio_dir" --workflow-name "$workflow" --app-name "$app" \
        --capio-cl "$here/capio_cl.json" "$@"
}

echo "work directory: $work"
# The steps run in the work directory: in a checkout, ./pycapio would shadow the installed package.
cd "$work"
run_step consumer "$here/consumer.py" "$capio_dir/series.csv" > "$work/consumer.out" &
consumer=$!
# Let the consumer attach first: the data it streams is not "permanent", so it lives only as
# long as the workflow's server, which stops when its last step leaves.
sleep 1
run_step producer "$here/producer.py" "$capio_dir/series.csv" 2> "$work/producer.err" > "$work/producer.out"
wait "$consumer"

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
