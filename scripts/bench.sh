#!/usr/bin/env bash
# Performance measurements (release profile; numbers go in closing notes, never into test
# assertions).
#
#   scripts/bench.sh                 # all benchmarks
#   scripts/bench.sh apply_block     # a criterion filter
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p interpool-contracts --bench ledger -- "$@"
