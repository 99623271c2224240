#!/usr/bin/env bash
# A two-step streaming workflow through pycapio, with one command:
#
#     examples/streaming_workflow.sh [WORK_DIR]
#
# The consumer step starts first and waits in open() for the file the producer step writes; the
# bytes go from producer to consumer through the CAPIO server's memory, and the file is on disk
# (persisted at commit) when the workflow ends. Neither step imports pycapio. A three-line CAPIO-CL
# file says who produces the file: that is what lets the consumer wait for it (without one, a step
# alone gets FileNotFoundError for a missing file at once, as without pycapio). Exits non-zero if
# the consumer did not read exactly what the producer wrote.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
capio_dir="$work/capio"
workflow="example-$$"
data="$capio_dir/measurements.csv"
mkdir -p "$capio_dir"

run_step() {  # app_name script [args...]
    local app="$1"
    shift
    "$python" -m pycapio --capio-dir "$capio_dir" --workflow-name "$workflow" --app-name "$app" \
        --capio-cl "$work/workflow.json" "$@"
}

echo "work directory: $work"
# The steps run in the work directory: in a checkout, ./pycapio would shadow the installed package.
cd "$work"
# The producer step writes the file and commits it when it closes it; the consumer reads it; the
# file is kept on disk (permanent).
cat > "$work/workflow.json" <<JSON
{"name": "$workflow",
 "IO_Graph": [
  {"name": "producer", "input_stream": [], "output_stream": ["measurements.csv"],
   "streaming": [{"name": ["measurements.csv"], "committed": "on_close"}]},
  {"name": "consumer", "input_stream": ["measurements.csv"], "output_stream": []}],
 "permanent": ["measurements.csv"]}
JSON
run_step consumer "$here/consumer.py" "$data" > "$work/consumer.out" &
consumer=$!
sleep 1  # only so that the consumer is visibly first: it is now blocked in open()
run_step producer "$here/producer.py" "$data" > "$work/producer.out"
wait "$consumer"

produced="$(cat "$work/producer.out")"
consumed="$(cat "$work/consumer.out")"
on_disk="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$data")"
echo "producer: $produced"
echo "consumer: $consumed"
if [[ "$produced" != "$consumed" || "$produced" != *"sha256=$on_disk" ]]; then
    echo "MISMATCH: the consumer did not read what the producer wrote" >&2
    exit 1
fi
echo "OK: streamed and persisted $(stat -c %s "$data") bytes ($data)"
