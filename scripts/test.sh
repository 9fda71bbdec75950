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

log "scripts/check-deploy.sh"
bash scripts/check-deploy.sh

# Chaos on real processes (scripts/chaos.sh; the README has the long run): one minute of
# perturbations in network namespaces. It needs root and a kernel that lets it make network
# namespaces, filter packets in them and mount a tmpfs; elsewhere it is skipped, and says
# why. Its checks failing fails the run.
chaos_unsupported() {
    [ "$(id -u)" -eq 0 ] || { echo "it needs root (network namespaces): sudo scripts/chaos.sh"; return; }
    bash scripts/install-deps.sh --chaos >/dev/null 2>&1 || { echo "its Debian packages could not be installed"; return; }
    ip netns del ipchaos-probe 2>/dev/null || true
    ip netns add ipchaos-probe 2>/dev/null || { echo "this machine cannot make network namespaces"; return; }
    local reason="" mount
    ip netns exec ipchaos-probe iptables -w -L >/dev/null 2>&1 || reason="iptables does not work in a network namespace here"
    mount=$(mktemp -d)
    if [ -z "$reason" ]; then
        if mount -t tmpfs -o size=1m ipchaos-probe "$mount" 2>/dev/null; then umount "$mount"; else reason="this machine cannot mount a tmpfs"; fi
    fi
    rmdir "$mount"
    ip netns del ipchaos-probe
    echo "$reason"
}
if [ "${CHAOS:-1}" = 0 ] || [ $# -gt 0 ]; then
    log "scripts/chaos.sh skipped (CHAOS=0, or arguments for cargo test were given)"
elif reason=$(chaos_unsupported) && [ -n "$reason" ]; then
    log "scripts/chaos.sh SKIPPED: $reason"
else
    log "scripts/chaos.sh --duration 60"
    bash scripts/chaos.sh --duration 60
fi
