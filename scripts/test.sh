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

# Debian packages: clang and libclang for RocksDB's bindings (the node's storage).
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || missing+=(libclang-dev)
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Toolchain components.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "installing rustup component $component"
        rustup component add "$component"
    fi
done

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The black-box tests run the real binaries from the same target/<profile>/ directory.
log "building binaries"
cargo build --workspace --bins --locked

log "cargo test"
cargo test --workspace --locked "$@"
