#!/usr/bin/env bash
# A two-step streaming workflow through pycapio, with one command:
#
#     examples/streaming_workflow.sh [WORK_DIR]
#
# Both steps run at once: the consumer waits in open() for the file the producer step writes; the
# bytes go from producer to consumer through the CAPIO server's memory, and the file is on disk
# (persisted at commit) when the workflow ends. Neither step imports pycapio. Exits non-zero if the
# consumer did not read exactly what the producer wrote.
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
    "$python" -m pycapio --capio-dir "$capio_dir" --workflow-name "$workflow" --app-name "$app" "$@"
}

echo "work directory: $work"
# The steps run in the work directory: in a checkout, ./pycapio would shadow the installed package.
cd "$work"
# Without a CAPIO-CL file a reader waits for a missing file only while another step is attached
# (one that may still create it); alone, it would get FileNotFoundError at once, as without
# pycapio. So the producer starts first; a CAPIO-CL file that declares it as the file's producer
# lets the consumer start first instead (see capio_cl_streaming/).
run_step producer "$here/producer.py" "$data" > "$work/producer.out" &
producer=$!
# Until the producer has attached to the workflow's server (or already finished).
for _ in $(seq 600); do
    if "$python" -m pycapio server status --workflow-name "$workflow" 2>/dev/null | grep -q 'producer\['; then
        break
    fi
    kill -0 "$producer" 2>/dev/null || break
    sleep 0.1
done
run_step consumer "$here/consumer.py" "$data" > "$work/consumer.out"
wait "$producer"

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
