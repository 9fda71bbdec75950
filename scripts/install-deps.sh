#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks to build
# Interpool (clang and libclang for RocksDB's bindings), and nothing already there.
set -euo pipefail
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q "ok installed" || missing+=(libclang-dev)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
    printf '==> installing Debian packages: %s\n' "${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
