#!/usr/bin/env bash
# A local consortium on this machine: 4 validators, 1 observer, 4 banks.
#
#   scripts/localnet.sh demo     `up`, then a settlement day with the wallet: accounts
#                                opened for the day's customers (new ones on every run,
#                                keys in ./localnet/demo/), cross-bank transfers, a payment
#                                queued by a net debit cap and released by an incoming one,
#                                a cycle closed, its settlement report, a gridlock of three
#                                banks settled by the liquidity-saving pass
#   scripts/localnet.sh up       build (release), generate ./localnet if absent, start all
#                                nodes in the background, wait until blocks commit
#   scripts/localnet.sh status   height of every node
#   scripts/localnet.sh logs [NODE]   follow the logs (all nodes, or one)
#   scripts/localnet.sh down     stop every node (data stays in ./localnet)
#   scripts/localnet.sh reset    stop and delete ./localnet
#
# The nodes serve their APIs over TLS with certificates from the localnet's own CA
# (./localnet/tls/ca.pem, which the wallet is given with --ca or INTERPOOL_CA), and answer
# account data only to signed requests (ADR 0014). INTERPOOL_PLAIN_HTTP=1 generates a
# localnet that serves plain HTTP instead: only for a machine nobody else can reach.
# INTERPOOL_LOCALNET=DIR keeps the localnet in DIR instead of ./localnet;
# INTERPOOL_BASE_PORT=P gives its nodes ports from P (p2p) and P + 1000 (HTTP);
# INTERPOOL_BIN=DIR runs the binaries already in DIR and builds nothing (the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."

NET=${INTERPOOL_LOCALNET:-localnet}
BIN=${INTERPOOL_BIN:-${CARGO_TARGET_DIR:-target}/release}
BASE_PORT=${INTERPOOL_BASE_PORT:-26000}

log() { printf '==> %s\n' "$*"; }

build() {
    [ -z "${INTERPOOL_BIN:-}" ] || return 0
    bash scripts/install-deps.sh
    log "building release binaries (the first build compiles RocksDB: 10-20 minutes)"
    cargo build --release --locked --bins
}

# The localnet's CA, when it serves TLS (after `generate`).
ca() { [ -f "$NET/tls/ca.pem" ] && echo "$NET/tls/ca.pem" || true; }

wallet() { "$BIN/interpool-wallet" --node "$NODE" ${CA:+--ca "$CA"} "$@"; }

# A settlement day on the running localnet, narrated. Every step uses the wallet CLI as a
# customer, a bank or the settlement authority would.
demo() {
    up
    NODE=$(nodes | awk 'NR == 1 {print $2}')
    CA=$(ca)
    # Bank-wide views (every bank's pool, the cycle report) are the regulator's to read; a
    # customer reads its own account with its own key.
    export INTERPOOL_KEY="$NET/keys/regulator.json"

    log "the banks at the start of the day"
    wallet banks

    # Every run has customers of its own, each opening with 1000.00: the story's amounts
    # assume it, and on a chain that has seen the demo before the sample customers' money is
    # already spent. Their keys stay in $NET/demo/ for a look afterwards.
    mkdir -p "$NET/demo"
    local key
    key=$(mktemp -d "$NET/demo/$(date +%Y%m%dT%H%M%S)-XXXX")
    log "the banks open accounts for today's customers, and each pays in 1000.00 (keys in $key)"
    local who bank
    for who in A-0 B-0 C-0 D-0 A-1 B-1 C-1; do
        bank=BANK_${who%-*}
        "$BIN/interpool-wallet" keygen --out "$key/customer-$bank-${who#*-}.json" \
            --label "demo customer of $bank" --insecure-plaintext >/dev/null
    done
    id() { "$BIN/interpool-wallet" address --key "$key/$1.json"; }
    for who in A-0 B-0 C-0 D-0 A-1 B-1 C-1; do
        bank=BANK_${who%-*}
        wallet bank open-account --key "$NET/keys/operator-$bank.json" \
            --owner "$(id "customer-$bank-${who#*-}")" --wait >/dev/null
    done
    # Each account is open (committed) before its deposit is submitted: a node refuses a
    # deposit into an account still pending (unknown_account). The deposits wait too.
    for who in A-0 B-0 C-0 D-0 A-1 B-1 C-1; do
        bank=BANK_${who%-*}
        wallet bank deposit --key "$NET/keys/operator-$bank.json" \
            --account "$(id "customer-$bank-${who#*-}")" --amount 1000.00 --wait >/dev/null
    done

    local a0 b0 c0 d0
    a0=$(id customer-BANK_A-0); b0=$(id customer-BANK_B-0)
    c0=$(id customer-BANK_C-0); d0=$(id customer-BANK_D-0)

    log "51.00 from a customer of BANK_A to one of BANK_B, and 50.00 back (gross 101.00)"
    wallet transfer --key "$key/customer-BANK_A-0.json" --to "$b0" --amount 51.00 --reference "invoice 7" --wait
    wallet transfer --key "$key/customer-BANK_B-0.json" --to "$a0" --amount 50.00 --reference "refund" --wait

    log "BANK_C's customer pays 600.00 to BANK_D: over BANK_C's 500.00 net debit cap, so it is queued"
    wallet transfer --key "$key/customer-BANK_C-0.json" --to "$d0" --amount 600.00 --wait --timeout 5 \
        || [ $? -eq 3 ] # 3: still queued when the wait ended, as expected
    wallet account "$c0" --key "$key/customer-BANK_C-0.json"
    wallet banks

    log "an incoming 200.00 for BANK_C makes room: the queued payment is released in the same block"
    wallet transfer --key "$key/customer-BANK_D-0.json" --to "$c0" --amount 200.00 --wait
    wallet history "$c0" --limit 2 --key "$key/customer-BANK_C-0.json"

    log "the settlement authority closes the cycle: one net movement per bank"
    wallet authority settle --key "$NET/keys/authority.json" --wait
    wallet cycle
    wallet banks

    log "a gridlock: BANK_A pays BANK_B 600.00, BANK_B pays BANK_C 600.00, each over its 500.00 cap"
    local a1 b1 c1
    a1=$(id customer-BANK_A-1); b1=$(id customer-BANK_B-1); c1=$(id customer-BANK_C-1)
    wallet transfer --key "$key/customer-BANK_A-1.json" --to "$b1" --amount 600.00 --reference "ring 1" --wait --timeout 3 \
        || [ $? -eq 3 ] # still queued, as expected
    wallet transfer --key "$key/customer-BANK_B-1.json" --to "$c1" --amount 600.00 --reference "ring 2" --wait --timeout 3 \
        || [ $? -eq 3 ]
    log "both wait, each for money that waits in another queue: without help, until they expire"
    wallet banks
    log "BANK_C pays BANK_A 600.00 and closes the ring: the liquidity-saving pass settles all three together"
    wallet transfer --key "$key/customer-BANK_C-1.json" --to "$a1" --amount 600.00 --reference "ring 3" --wait
    wallet history "$a1" --limit 2 --key "$key/customer-BANK_A-1.json"
    wallet banks
    status
    log "done; the consortium keeps running: scripts/localnet.sh status | logs | down"
}

generate() {
    if [ ! -f "$NET/localnet.json" ]; then
        log "generating $NET"
        "$BIN/interpool-genesis" localnet --out "$NET" --validators "${INTERPOOL_VALIDATORS:-4}" --observers 1 --banks 4 \
            --accounts-per-bank 3 --base-port "$BASE_PORT" --cycle-blocks "${INTERPOOL_CYCLE_BLOCKS:-7200}" --cap 500.00 \
            ${INTERPOOL_PLAIN_HTTP:+--plain-http}
    fi
}

nodes() { python3 -c 'import json,sys; [print(n["name"], n["rpc_url"], n["config"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$NET/localnet.json"; }

height() { curl -fsS --max-time 2 ${CA:+--cacert "$CA"} "$1/v1/status" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || echo "-"; }

up() {
    build
    generate
    CA=$(ca)
    mkdir -p "$NET/logs"
    while read -r name rpc config; do
        pidfile="$NET/$name/node.pid"
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            log "$name already running (pid $(cat "$pidfile"))"
            continue
        fi
        "$BIN/interpool-node" run --config "$NET/$config" >>"$NET/logs/$name.log" 2>&1 &
        echo $! >"$pidfile"
        log "started $name (pid $!), rpc $rpc, log $NET/logs/$name.log"
    done < <(nodes)
    log "waiting for blocks to commit"
    first=$(nodes | awk 'NR == 1 {print $2}')
    for _ in $(seq 1 120); do
        h=$(height "$first")
        if [ "$h" != "-" ] && [ "$h" -ge 2 ]; then
            status
            return 0
        fi
        sleep 0.5
    done
    log "no blocks after 60 s; see $NET/logs/"
    status
    return 1
}

status() {
    CA=${CA:-$(ca)}
    while read -r name rpc _; do
        printf '  %-12s %-28s height %s\n' "$name" "$rpc" "$(height "$rpc")"
    done < <(nodes)
}

down() {
    [ -f "$NET/localnet.json" ] || { log "no $NET"; return 0; }
    while read -r name _ _; do
        pidfile="$NET/$name/node.pid"
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null && log "stopped $name" || true
            rm -f "$pidfile"
        fi
    done < <(nodes)
}

case "${1:-}" in
    up) up ;;
    demo) demo ;;
    status) status ;;
    logs) if [ -n "${2:-}" ]; then tail -F "$NET/logs/$2.log"; else tail -F "$NET"/logs/*.log; fi ;;
    down) down ;;
    reset) down; rm -rf "$NET"; log "deleted $NET" ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
esac
