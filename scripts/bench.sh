#!/usr/bin/env bash
# Performance measurements (release profile; numbers go in closing notes, never into test
# assertions).
#
#   scripts/bench.sh                      # criterion benchmarks of the ledger
#   scripts/bench.sh apply_block          # ... with a criterion filter
#   scripts/bench.sh network [LOAD ARGS]  # a release localnet (4 validators, 1 observer)
#                                         # under `interpool-wallet load` (default: 10,000
#                                         # transfers in batches of 500): throughput, latency
#                                         # percentiles, and each node's CPU time per
#                                         # committed transaction
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15; the command
# name in field 2 may contain spaces, so count from the closing parenthesis).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

committed() { curl -fsS --max-time 5 "$1/metrics" | awk '$1 == "interpool_committed_transactions_total" { print $2 }'; }

network() {
    export INTERPOOL_LOCALNET=${INTERPOOL_LOCALNET:-target/bench-localnet}
    export INTERPOOL_BASE_PORT=${INTERPOOL_BASE_PORT:-28000}
    local bin=${CARGO_TARGET_DIR:-target}/release
    bash scripts/localnet.sh reset >/dev/null
    bash scripts/localnet.sh up
    trap 'bash scripts/localnet.sh down >/dev/null' EXIT
    local net=$INTERPOOL_LOCALNET names=() pids=() before=() rpc
    while read -r name url; do
        names+=("$name")
        pids+=("$(cat "$net/$name/node.pid")")
        [ -n "${rpc:-}" ] || rpc=$url
    done < <(python3 -c 'import json,sys; [print(n["name"], n["rpc_url"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$net/localnet.json")
    for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
    local tx_before tx_after
    tx_before=$(committed "$rpc")
    local args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(--transfers 10000 --batch 500)
    log "interpool-wallet load ${args[*]}"
    "$bin/interpool-wallet" load --localnet "$net" "${args[@]}"
    tx_after=$(committed "$rpc")
    local transactions=$((${tx_after%.*} - ${tx_before%.*})) hz
    hz=$(getconf CLK_TCK)
    log "CPU per committed transaction ($transactions transactions; $(nproc) cores shared by every node and the load generator)"
    for i in "${!names[@]}"; do
        local ticks=$(($(cpu_ticks "${pids[$i]}") - before[i]))
        awk -v name="${names[$i]}" -v ticks="$ticks" -v hz="$hz" -v n="$transactions" \
            'BEGIN { s = ticks / hz; printf "  %-12s %7.2f s CPU  %7.1f us per transaction\n", name, s, (n > 0 ? s * 1e6 / n : 0) }'
    done
}

case "${1:-}" in
    network) shift; network "$@" ;;
    *) cargo bench --locked -p interpool-contracts --bench ledger -- "$@" ;;
esac
