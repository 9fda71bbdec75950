#!/usr/bin/env bash
# The settlement demo: three banks, the 51-versus-50 netting example, a transfer queued by
# a net debit cap and released by an incoming payment, and the settlement reports.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release --locked -q -p interpool-contracts --example settlement_demo
