#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, unit, property,
# simulation and black-box tests. Installs what a fresh Debian machine with only the Rust
# toolchain lacks, and nothing that is already there.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p interpool-contracts   # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages (clang and libclang for RocksDB's bindings).
bash scripts/install-deps.sh

# Toolchain components.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "installing rustup component $component"
        rustup component add "$component"
    fi
done

log "cargo fmt --check"
cargo fmt --all -- --check

# The black-box tests run the real binaries from the same target/<profile>/ directory.
# --all-targets resolves features exactly as `cargo test` does, so nothing (RocksDB above
# all) is compiled twice.
log "building binaries and tests"
cargo build --workspace --all-targets --locked

# After the build, in the same environment: librocksdb-sys's build-script run is shared by
# check and build units, so clippy reuses the RocksDB the build compiled. (Setting
# ROCKSDB_LIB_DIR for clippy alone, as this script once did, made that build script run
# again on every switch between clippy and build: RocksDB's C++, 15 minutes, each time.)
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked "$@"

# Chaos on real processes (scripts/chaos.sh; the README has the long run): one minute of
# perturbations in network namespaces. It needs root and a kernel that lets it make network
# namespaces; elsewhere it is skipped, and says so.
if [ "${CHAOS:-1}" = 0 ] || [ $# -gt 0 ]; then
    log "scripts/chaos.sh skipped (CHAOS=0, or arguments for cargo test were given)"
elif [ "$(id -u)" -ne 0 ]; then
    log "scripts/chaos.sh SKIPPED: it needs root (network namespaces); run: sudo scripts/chaos.sh"
elif ! ip netns add ipchaos-probe 2>/dev/null && ! { bash scripts/install-deps.sh --chaos >/dev/null && ip netns add ipchaos-probe; }; then
    log "scripts/chaos.sh SKIPPED: this machine cannot make network namespaces"
else
    ip netns del ipchaos-probe
    log "scripts/chaos.sh --duration 60"
    bash scripts/chaos.sh --duration 60
fi
