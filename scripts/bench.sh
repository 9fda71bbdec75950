#!/usr/bin/env bash
# Performance measurements (release profile; numbers go in closing notes, never into test
# assertions).
#
#   scripts/bench.sh [--validators N] [--duration S] [--rate R|max] [--accounts K]
#                    [--batch B] [--submitters S] [--txs N]
#       A fresh release localnet of N validators (default 4) and 1 observer in
#       target/bench-localnet, a warm-up (2,000 transfers), then `interpool-wallet load`
#       (default: 60 s as fast as accepted, 10,000 accounts opened and funded first; batches
#       of 500 at --rate max, else of rate/20: one about every 50 ms per submitter; S
#       submitters per validator, default 4, each with one batch in flight). Prints
#       the summary and writes bench-results/<time>-<N>v-<rate>.json (the full report:
#       rates, latency percentiles and histogram, refusals, blocks, each node's CPU and peak
#       RSS and the load generator's, the machine's speed before and after the load,
#       transfers per second) and .png (throughput per
#       second, latency distribution; matplotlib in a virtualenv under target/bench-venv).
#   scripts/bench.sh ledger [FILTER]       the ledger's criterion benchmarks
#   READ_LOAD=1 scripts/bench.sh ...       the network run while 64 event streams replay the
#                                          chain from its first block and history, proof and
#                                          status requests run in loops on every node
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

chart() {
    local venv=${CARGO_TARGET_DIR:-target}/bench-venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        log "installing matplotlib into $venv (once)"
        python3 -m venv "$venv" >/dev/null 2>&1 || { bash scripts/install-deps.sh --bench && python3 -m venv "$venv"; }
        "$venv/bin/pip" install --quiet "matplotlib==3.9.2" || { log "no matplotlib: chart skipped"; return 0; }
    fi
    "$venv/bin/python" scripts/bench/chart.py "$1" "$2"
}

network() {
    local validators=4 duration=60 rate=max accounts=10000 batch="" txs="" submitters=4
    while [ $# -gt 0 ]; do
        case "$1" in
            --validators) validators=${2:?}; shift 2 ;;
            --duration) duration=${2:?}; shift 2 ;;
            --rate) rate=${2:?}; shift 2 ;;
            --accounts) accounts=${2:?}; shift 2 ;;
            --batch) batch=${2:?}; shift 2 ;;
            --submitters) submitters=${2:?}; shift 2 ;;
            --txs) txs=${2:?}; shift 2 ;;
            *) echo "bench.sh: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
        esac
    done
    export INTERPOOL_LOCALNET=${INTERPOOL_LOCALNET:-target/bench-localnet}
    export INTERPOOL_BASE_PORT=${INTERPOOL_BASE_PORT:-28000}
    export INTERPOOL_VALIDATORS=$validators
    local bin=${CARGO_TARGET_DIR:-target}/release net=$INTERPOOL_LOCALNET
    bash scripts/localnet.sh reset >/dev/null
    bash scripts/localnet.sh up
    trap 'bash scripts/localnet.sh down >/dev/null' EXIT
    if [ "${READ_LOAD:-0}" = 1 ]; then
        local account urls=() readers=()
        account=$("$bin/interpool-wallet" address --key "$net/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["banks"][0]["accounts"][0]["key_file"])' "$net/localnet.json")")
        while read -r url; do urls+=("$url"); done < <(python3 -c 'import json,sys; [print(n["rpc_url"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$net/localnet.json")
        # Reads are signed as the regulator (ADR 0014), over TLS with the localnet's CA.
        export INTERPOOL_KEY="$net/keys/regulator.json"
        [ -f "$net/tls/ca.pem" ] && export INTERPOOL_CA="$net/tls/ca.pem"
        local reader=("$bin/interpool-wallet")
        log "read load: 64 event streams, history/proof/status loops (signed, through the wallet)"
        for i in $(seq 0 63); do
            "${reader[@]}" --node "${urls[$((i % ${#urls[@]}))]}" watch --json >/dev/null 2>&1 &
            readers+=($!)
        done
        for query in "history $account --limit 200" "balance $account --verify --genesis $net/genesis.json --any-age" "status"; do
            # shellcheck disable=SC2086 # the query's words
            (while true; do for url in "${urls[@]}"; do "${reader[@]}" --node "$url" $query >/dev/null 2>&1; done; done) &
            readers+=($!)
        done
        trap 'kill "${readers[@]}" 2>/dev/null || true; bash scripts/localnet.sh down >/dev/null' EXIT
    fi
    # A batch per submitter about every 50 ms at a fixed rate (as a bank's gateway would
    # send), 500 at the highest rate.
    if [ -z "$batch" ]; then
        if [ "$rate" = max ]; then batch=500; else batch=$(((rate + 19) / 20)); [ "$batch" -le 500 ] || batch=500; fi
    fi
    log "warm-up: 2,000 transfers between the sample customers"
    "$bin/interpool-wallet" load --manifest "$net/localnet.json" --accounts 0 --txs 2000 >/dev/null
    mkdir -p bench-results
    local name
    name=bench-results/$(date -u +%Y%m%dT%H%M%SZ)-${validators}v-${rate}
    local amount=(--duration "$duration")
    [ -z "$txs" ] || amount=(--txs "$txs")
    log "interpool-wallet load --accounts $accounts ${amount[*]} --rate $rate --batch $batch --submitters $submitters"
    local status=0
    "$bin/interpool-wallet" load --manifest "$net/localnet.json" --accounts "$accounts" \
        "${amount[@]}" --rate "$rate" --batch "$batch" --submitters "$submitters" \
        --out "$name.json" --timeout 300 || status=$?
    if [ -f "$name.json" ]; then
        chart "$name.json" "$name.png" && log "report: $name.json, chart: $name.png"
    fi
    return "$status"
}

case "${1:-}" in
    ledger) shift; cargo bench --locked -p interpool-contracts --bench ledger -- "$@" ;;
    network) shift; network "$@" ;;
    *) network "$@" ;;
esac
