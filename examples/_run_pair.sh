# Sourced by the CAPIO-CL examples: run the example's consumer step, then its producer step, under
# `pycapio --capio-cl "$here/capio_cl.json"`, in a work directory. Sets $python, $work and
# $capio_dir for the caller's checks; consumer.out, producer.out and producer.err land in $work.

run_pair() {  # workflow-name target-in-the-CAPIO-dir [work-dir]
    local workflow="$1" target="$2"
    python="${PYTHON:-python3}"
    work="${3:-$(mktemp -d)}"
    mkdir -p "$work"
    work="$(cd "$work" && pwd)"
    capio_dir="$work/capio"
    mkdir -p "$capio_dir"
    step() {  # app-name script [args...]
        local app="$1"
        shift
        "$python" -m pycapio --capio-dir "$capio_dir" --workflow-name "$workflow" --app-name "$app" \
            --capio-cl "$here/capio_cl.json" "$@"
    }
    echo "work directory: $work"
    # The steps run in the work directory: in a checkout, ./pycapio would shadow the installed package.
    cd "$work"
    step consumer "$here/consumer.py" "$capio_dir/$target" > "$work/consumer.out" &
    local consumer=$!
    # Let the consumer attach first: the data it streams is not "permanent", so it lives only as
    # long as the workflow's server, which stops when its last step leaves.
    sleep 1
    step producer "$here/producer.py" "$capio_dir/$target" 2> "$work/producer.err" > "$work/producer.out"
    wait "$consumer"
}
