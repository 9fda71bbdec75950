#!/usr/bin/env bash
# Soaks both deterministic simulators in release builds and prints seeds/s and violations
# (there must be none): the consensus engine's simulator (its own host, every fault
# scenario) and the node's (driver, core, mempool, admission and consensus-state store over
# an in-memory store that loses unsynced writes at crashes; see node/src/sim).
#
#   scripts/soak.sh                               # 100,000 consensus seeds + 2,000 node seeds
#   scripts/soak.sh --consensus-seeds N --node-seeds M [--first-seed S]
#
# Exits 1 if either simulator found a violation; each violation prints the command that
# replays it with a trace. CI runs the debug-build share inside `cargo test` (about 2,000
# consensus seeds and the node simulator's seeds).
set -euo pipefail
cd "$(dirname "$0")/.."

consensus_seeds=100000
node_seeds=2000
first_seed=0
while [ $# -gt 0 ]; do
    case "$1" in
        --consensus-seeds) consensus_seeds=$2; shift 2 ;;
        --node-seeds) node_seeds=$2; shift 2 ;;
        --first-seed) first_seed=$2; shift 2 ;;
        *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

log() { printf '\n==> %s\n' "$*"; }

bash scripts/install-deps.sh
log "building the simulators (release)"
cargo build --release --locked --workspace --examples
bin=${CARGO_TARGET_DIR:-target}/release/examples

status=0
log "consensus simulator: $consensus_seeds seeds from $first_seed (4 and 7 validators alternate)"
half=$((consensus_seeds / 2))
started=$(date +%s%N)
"$bin/soak" --seeds "$half" --first-seed "$first_seed" --validators 4 || status=1
"$bin/soak" --seeds "$((consensus_seeds - half))" --first-seed "$first_seed" --validators 7 || status=1
consensus_s=$(awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')

log "node simulator: $node_seeds seeds from $first_seed"
started=$(date +%s%N)
"$bin/simulate" --seeds "$node_seeds" --first-seed "$first_seed" || status=1
node_s=$(awk -v a="$started" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')

log "summary"
awk -v n="$consensus_seeds" -v s="$consensus_s" 'BEGIN { printf "consensus simulator: %d seeds in %.0f s (%.1f seeds/s)\n", n, s, n / s }'
awk -v n="$node_seeds" -v s="$node_s" 'BEGIN { printf "node simulator:      %d seeds in %.0f s (%.2f seeds/s)\n", n, s, n / s }'
if [ "$status" -ne 0 ]; then
    echo "VIOLATIONS FOUND (see above; each prints its replay command)"
else
    echo "violations: 0"
fi
exit "$status"
