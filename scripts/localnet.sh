#!/usr/bin/env bash
# A local consortium on this machine: 4 validators, 1 observer, 4 banks.
#
#   scripts/localnet.sh up       build (release), generate ./localnet if absent, start all
#                                nodes in the background, wait until blocks commit
#   scripts/localnet.sh status   height of every node
#   scripts/localnet.sh logs [NODE]   follow the logs (all nodes, or one)
#   scripts/localnet.sh down     stop every node (data stays in ./localnet)
#   scripts/localnet.sh reset    stop and delete ./localnet
set -euo pipefail
cd "$(dirname "$0")/.."

NET=${INTERPOOL_LOCALNET:-localnet}
BIN=target/release
BASE_PORT=${INTERPOOL_BASE_PORT:-26000}

log() { printf '==> %s\n' "$*"; }

build() {
    bash scripts/install-deps.sh
    log "building release binaries (the first build compiles RocksDB: 10-20 minutes)"
    cargo build --release --locked --bins
}

generate() {
    if [ ! -f "$NET/localnet.json" ]; then
        log "generating $NET"
        "$BIN/interpool-genesis" localnet --out "$NET" --validators 4 --observers 1 --banks 4 \
            --accounts-per-bank 3 --base-port "$BASE_PORT" --cycle-blocks 30 --cap 500.00
    fi
}

nodes() { python3 -c 'import json,sys; [print(n["name"], n["rpc_url"], n["config"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$NET/localnet.json"; }

height() { curl -fsS --max-time 2 "$1/v1/status" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || echo "-"; }

up() {
    build
    generate
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
    first=$(nodes | head -1 | awk '{print $2}')
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
    status) status ;;
    logs) if [ -n "${2:-}" ]; then tail -F "$NET/logs/$2.log"; else tail -F "$NET"/logs/*.log; fi ;;
    down) down ;;
    reset) down; rm -rf "$NET"; log "deleted $NET" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
