#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks to build
# Interpool (clang and libclang for RocksDB's bindings; curl and python3 for the scripts),
# and nothing already there.
#
#   scripts/install-deps.sh           # to build and test
#   scripts/install-deps.sh --chaos   # ... and what scripts/chaos.sh needs: ip (network
#                                     # namespaces), iptables, libnetfilter-queue1, python3
#                                     # and its cryptography package (signed reads)
#   scripts/install-deps.sh --bench   # ... and python3 with venv (scripts/bench.sh's chart)
#   scripts/install-deps.sh --profile # ... and perf (scripts/profile.sh)
set -euo pipefail
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
installed libclang-dev || missing+=(libclang-dev)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# scripts/localnet.sh reads localnet.json and the nodes' status with it.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ "${1:-}" = "--chaos" ]; then
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    installed libnetfilter-queue1 || missing+=(libnetfilter-queue1)
    # Signing the harness's reads (ed25519).
    python3 -c 'import cryptography.hazmat.primitives.asymmetric.ed25519' 2>/dev/null \
        || missing+=(python3-cryptography)
fi
if [ "${1:-}" = "--bench" ]; then
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
fi
if [ "${1:-}" = "--profile" ]; then
    command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
fi
if ((${#missing[@]})); then
    printf '==> installing Debian packages: %s\n' "${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
