#!/usr/bin/env bash
# Where each node's CPU goes under load: scripts/bench.sh's run, with every node recorded by
# `perf` (DWARF call graphs) for a while once the load is steady, and each node's samples
# sorted into the pipeline's phases (scripts/bench/phases.py: signature verification,
# admission, execution, the state tree, the store, RocksDB's flushes, consensus, HTTP, ...).
#
#   scripts/profile.sh [--validators N] [--rate R|max] [--duration S] [--accounts K]
#                      [--seconds P] [--frequency HZ]
#       N validators (default 4) and an observer, load at R (default max) for S seconds
#       (default 60); recording starts once validator-0 has committed the set-up (2 per
#       account, the 2,000 warm-up transfers) and 5 s of load, and lasts P seconds (default
#       15) at HZ samples a second (default 99). Prints bench.sh's summary and a table of
#       phases per node; under bench-results/<time>-profile-<N>v-<R>/: each node's
#       perf.data, its phases (JSON) and folded stacks (<node>.folded: the input of any
#       flame graph tool, e.g. `inferno-flamegraph < validator-0.folded > v0.svg`).
#
# Recording costs CPU of its own (the stacks are copied at every sample): the throughput of
# a profiled run is a little below an unprofiled one. Needs perf (`scripts/install-deps.sh
# --profile`) and the right to trace the nodes (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

validators=4 rate=max duration=60 accounts=10000 seconds=15 frequency=99
while [ $# -gt 0 ]; do
    case "$1" in
        --validators) validators=${2:?}; shift 2 ;;
        --rate) rate=${2:?}; shift 2 ;;
        --duration) duration=${2:?}; shift 2 ;;
        --accounts) accounts=${2:?}; shift 2 ;;
        --seconds) seconds=${2:?}; shift 2 ;;
        --frequency) frequency=${2:?}; shift 2 ;;
        *) echo "profile.sh: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null 2>&1 || { echo "profile.sh: no perf; scripts/install-deps.sh --profile installs it" >&2; exit 1; }

export INTERPOOL_LOCALNET=${INTERPOOL_LOCALNET:-target/bench-localnet}
net=$INTERPOOL_LOCALNET
out=bench-results/$(date -u +%Y%m%dT%H%M%SZ)-profile-${validators}v-${rate}
mkdir -p "$out"
# Steady load: the set-up's transactions and 5 s of the offered rate (5,000/s taken for
# "max") committed.
per_second=$rate
[ "$rate" != max ] || per_second=5000
threshold=$((2 * accounts + 2000 + 5 * per_second))

bash scripts/bench.sh --validators "$validators" --rate "$rate" --duration "$duration" \
    --accounts "$accounts" >"$out/bench.log" 2>&1 &
bench=$!
trap 'kill "$bench" 2>/dev/null || true' EXIT
log "scripts/bench.sh --validators $validators --rate $rate --duration $duration --accounts $accounts (output in $out/bench.log)"

committed() {
    # Transactions in validator-0's committed blocks so far (its log, colours stripped).
    sed 's/\x1b\[[0-9;]*m//g' "$net/logs/validator-0.log" 2>/dev/null |
        awk '/committed block/ { for (i = 1; i <= NF; i++) if ($i ~ /^transactions=/) { sub(/transactions=/, "", $i); n += $i } } END { print n + 0 }'
}
# The localnet is reset first: wait for the new log, then for the load.
deadline=$((SECONDS + 1800))
sleep 5
until [ "$(committed)" -ge "$threshold" ]; do
    kill -0 "$bench" 2>/dev/null || { cat "$out/bench.log"; echo "profile.sh: the bench ended before the load was steady" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "profile.sh: no steady load after 30 minutes" >&2; exit 1; }
    sleep 1
done

nodes=()
for config in "$net"/*/config.toml; do nodes+=("$(basename "$(dirname "$config")")"); done
recorders=()
for node in "${nodes[@]}"; do
    pid=$(pgrep -f -- "--config $net/$node/config.toml" | head -n 1 || true)
    [ -n "$pid" ] || { echo "profile.sh: $node is not running" >&2; exit 1; }
    perf record -e cpu-clock -F "$frequency" --call-graph dwarf,16384 -p "$pid" \
        -o "$out/$node.data" -- sleep "$seconds" >"$out/$node.perf.log" 2>&1 &
    recorders+=($!)
done
log "recording ${nodes[*]} for $seconds s at $frequency Hz"
for i in "${!recorders[@]}"; do
    wait "${recorders[$i]}" || {
        cat "$out/${nodes[$i]}.perf.log" >&2
        echo "profile.sh: perf could not record ${nodes[$i]} (root, or kernel.perf_event_paranoid <= 1?)" >&2
        exit 1
    }
done
status=0
wait "$bench" || status=$?
trap - EXIT
tail -n 12 "$out/bench.log"

log "where the CPU went (share of each node's samples)"
for node in "${nodes[@]}"; do
    perf script -i "$out/$node.data" 2>/dev/null >"$out/$node.script"
    echo "--- $node"
    python3 scripts/bench/phases.py "$out/$node.script" \
        --folded "$out/$node.folded" --json "$out/$node.phases.json"
    rm -f "$out/$node.script"
done
log "perf data, phases and folded stacks: $out"
exit "$status"
