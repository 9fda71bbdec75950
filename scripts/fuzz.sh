#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after the other, at low priority, and prints the
# executions of each (libFuzzer's final stats). Installs what is missing: the Debian
# packages RocksDB needs, a nightly toolchain, cargo-fuzz.
#
#   scripts/fuzz.sh                   # every target, 600 s each
#   scripts/fuzz.sh http_body 60      # one target, 60 s
#   scripts/fuzz.sh all 60            # every target, 60 s each
#
# Targets: transaction, consensus_message, sync_response, p2p_frame, http_body. The first
# build compiles the whole dependency tree with sanitizers, RocksDB's C++ included (20–30
# minutes on two cores); later ones take seconds.
#
# New inputs that reach new code are added to fuzz/corpus/<target>/; minimize before
# committing them: `cargo +nightly fuzz cmin <target>`. A failing input is saved under
# fuzz/artifacts/<target>/ and makes the script fail; replay it with
# `cargo +nightly fuzz run <target> <file>`, then keep it in fuzz/regressions/<target>/ with a
# named test beside the fix. `cargo test` replays the corpora and the regressions.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(transaction consensus_message sync_response p2p_frame http_body)
target=${1:-all}
seconds=${2:-600}

log() { printf '\n==> %s\n' "$*"; }

if [ "$target" = all ]; then
    selected=("${TARGETS[@]}")
elif [[ " ${TARGETS[*]} " == *" $target "* ]]; then
    selected=("$target")
else
    echo "unknown target $target; one of: all ${TARGETS[*]}" >&2
    exit 2
fi

bash scripts/install-deps.sh
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing a nightly toolchain (cargo-fuzz needs it for the sanitizers)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The http_body target opens a temporary store per process: keep it in the build directory.
export TMPDIR="$PWD/fuzz/target/tmp"
mkdir -p "$TMPDIR"

log "building the fuzz targets"
nice -n 10 cargo +nightly fuzz build

# libFuzzer options per target. http_body: bodies up to 12 KiB against the router's 8 KiB
# limit (interpool_node::fuzzing::HTTP_MAX_BODY_BYTES), so both sides of it are reached.
options() {
    case "$1" in
        http_body) echo "-max_len=12288" ;;
        *) echo "-max_len=4096" ;;
    esac
}

failed=()
summary=()
for name in "${selected[@]}"; do
    log "fuzzing $name for $seconds s"
    output="fuzz/target/fuzz-$name.log"
    # shellcheck disable=SC2046 # the options are separate words
    if nice -n 10 cargo +nightly fuzz run "$name" -- \
        -max_total_time="$seconds" -print_final_stats=1 $(options "$name") >"$output" 2>&1; then
        verdict=ok
    else
        verdict="FAILED (see $output and fuzz/artifacts/$name/)"
        failed+=("$name")
        grep -E "panicked|ERROR|SUMMARY" "$output" | head -5 || true
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$output" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$output" | tail -1)
    final=$(grep -E '^#[0-9]+' "$output" | tail -1 || true)
    summary+=("$(printf '%-18s %12s executions %8s exec/s  %s' "$name" "${executions:-?}" "${speed:-?}" "$verdict")")
    printf '%s\n' "${final:-no stats}"
    rm -rf "${TMPDIR:?}"/*
done

log "executions per target ($seconds s each)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "failing targets: ${failed[*]}" >&2
    exit 1
fi
