#!/usr/bin/env bash
# A producer on one node and a consumer on another, one namespace between them, with one command:
#
#     examples/multinode/run.sh [WORK_DIR]
#
# Two "nodes" on this machine: an MPI job of two ranks joined only by TCP (`--mca btl tcp,self`),
# each running its node's pycapio server with a runtime directory of its own (as each node of a
# cluster has its own /tmp); the CAPIO directory stands for the cluster's shared file system. The
# consumer starts first on node 1 and waits in open() for the file the producer then writes on
# node 0; the bytes cross from node 0's server to node 1's over MPI while they are written
# (CAPIO-CL no_update), the file is persisted once, by node 0, and the job stops cleanly. Neither
# step imports pycapio. Exits non-zero if the consumer did not read exactly what the producer wrote.
#
# Needs MPI (Debian: apt-get install libopenmpi-dev openmpi-bin libclang-dev) and pycapio built with
# it: `PYCAPIO_MPI=1 pip install .`. CAPIO_SERVER_EXEC=path runs that capio_server instead of the
# installed one (e.g. target/mpi/debug/capio_server from `cargo build -p capio-server --features mpi`).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
capio_dir="$work/capio"
# Short, under /tmp: a server's socket path must fit in sun_path (108 bytes).
runtime="$(mktemp -d /tmp/pycapio-nodes-XXXXXX)"
workflow="multinode-$$"
data="$capio_dir/measurements.csv"
mkdir -p "$capio_dir"
mkdir -m 700 "$runtime/node0" "$runtime/node1"
# The steps run in the work directory: in a checkout, ./pycapio would shadow the installed package.
cd "$work"

cat > "$work/workflow.json" <<JSON
{"name": "$workflow",
 "IO_Graph": [
  {"name": "producer", "input_stream": [], "output_stream": ["measurements.csv"],
   "streaming": [{"name": ["measurements.csv"], "committed": "on_close", "mode": "no_update"}]},
  {"name": "consumer", "input_stream": ["measurements.csv"], "output_stream": []}],
 "permanent": ["measurements.csv"]}
JSON

# One server per node. Each rank picks its node's runtime directory from its rank, as a job script
# on a cluster would pick nothing at all (every node has its own /tmp).
if [[ -n "${CAPIO_SERVER_EXEC:-}" ]]; then
    server=("$CAPIO_SERVER_EXEC" --backend mpi --managed --config "$work/workflow.json")
else
    server=("$python" -m pycapio server run --capio-cl "$work/workflow.json")
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun -np 2 --oversubscribe --mca btl tcp,self \
    sh -c 'PYCAPIO_RUNTIME_DIR="$0/node$OMPI_COMM_WORLD_RANK" exec "$@"' "$runtime" \
    "${server[@]}" --capio-dir "$capio_dir" --workflow-name "$workflow" \
    > "$work/servers.log" 2>&1 &
job=$!
stop_job() {
    if kill -0 "$job" 2>/dev/null; then
        PYCAPIO_RUNTIME_DIR="$runtime/node0" "$python" -m pycapio server stop --workflow-name "$workflow" \
            > /dev/null 2>&1 || kill "$job" 2>/dev/null || true
        wait "$job" || true
    fi
    rm -rf "$runtime"
}
trap stop_job EXIT

on_node() {  # rank app_name script [args...]
    local rank="$1" app="$2"
    shift 2
    PYCAPIO_RUNTIME_DIR="$runtime/node$rank" "$python" -m pycapio --capio-dir "$capio_dir" \
        --workflow-name "$workflow" --app-name "$app" "$@"
}

echo "work directory: $work (servers log to $work/servers.log; nodes' runtime directories $runtime)"
for rank in 0 1; do  # both nodes' servers are up
    for _ in $(seq 600); do
        if PYCAPIO_RUNTIME_DIR="$runtime/node$rank" "$python" -m pycapio server status \
            --workflow-name "$workflow" > /dev/null 2>&1; then
            break
        fi
        kill -0 "$job" 2>/dev/null || { cat "$work/servers.log" >&2; exit 1; }
        sleep 0.1
    done
done

on_node 1 consumer "$here/consumer.py" "$data" > "$work/consumer.out" &
consumer=$!
sleep 1  # only so that the consumer is visibly first: it is now blocked in open() on node 1
on_node 0 producer "$here/producer.py" "$data" > "$work/producer.out"
wait "$consumer"
PYCAPIO_RUNTIME_DIR="$runtime/node1" "$python" -m pycapio server status --workflow-name "$workflow" \
    | grep -E "node 1 of 2|moved between nodes|measurements.csv|from node" || true

trap 'rm -rf "$runtime"' EXIT
PYCAPIO_RUNTIME_DIR="$runtime/node0" "$python" -m pycapio server stop --workflow-name "$workflow" > /dev/null
wait "$job"  # the MPI job exits 0 once every node's server has stopped

produced="$(cat "$work/producer.out")"
consumed="$(cat "$work/consumer.out")"
on_disk="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$data")"
echo "producer (node 0): $produced"
echo "consumer (node 1): $consumed"
if [[ "$produced" != "$consumed" || "$produced" != *"sha256=$on_disk" ]]; then
    echo "MISMATCH: the consumer did not read what the producer wrote" >&2
    exit 1
fi
echo "OK: streamed across nodes and persisted $(stat -c %s "$data") bytes ($data)"
