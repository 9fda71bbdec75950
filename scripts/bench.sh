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
#   READ_LOAD=1 scripts/bench.sh network ...  # the same, while 64 event streams replay the
#                                         # chain from its first block and history, proof
#                                         # and status requests run in loops on every node
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
    READERS=()
    if [ "${READ_LOAD:-0}" = 1 ]; then
        # The payer whose history and proof are read: the first sample customer.
        local account
        account=$("$bin/interpool-wallet" address --key "$net/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["banks"][0]["accounts"][0]["key_file"])' "$net/localnet.json")")
        local urls=()
        while read -r _ url; do urls+=("$url"); done < <(python3 -c 'import json,sys; [print(n["name"], n["rpc_url"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$net/localnet.json")
        log "read load: 64 event streams from the first block, history/proof/status loops"
        for i in $(seq 0 63); do
            curl -sN "${urls[$((i % ${#urls[@]}))]}/v1/events?after=0:0" >/dev/null 2>&1 &
            READERS+=($!)
        done
        for route in "/v1/accounts/$account/transactions?limit=200" "/v1/accounts/$account/proof" "/v1/status"; do
            ( while true; do for url in "${urls[@]}"; do curl -s -o /dev/null "$url$route"; done; done ) &
            READERS+=($!)
        done
        trap 'kill "${READERS[@]}" 2>/dev/null || true; bash scripts/localnet.sh down >/dev/null' EXIT
    fi
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
