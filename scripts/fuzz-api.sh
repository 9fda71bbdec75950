#!/usr/bin/env bash
# Attacks the HTTP API with a schema-driven fuzzer: Schemathesis reads /v1/openapi.json of a
# running validator and of a running observer and sends what the document allows and what
# it forbids, checking every answer against the document (all checks: no 5xx, only
# documented statuses, content types and headers, bodies that fit their schemas, invalid
# input refused, valid input accepted), then a stateful run that chains operations.
#
#   scripts/fuzz-api.sh                  # build, start a localnet, fuzz both nodes, stop
#   FUZZ_MAX_EXAMPLES=200 scripts/fuzz-api.sh   # more cases per operation (default 50)
#   FUZZ_SEED=1234 scripts/fuzz-api.sh   # replay a run exactly (each run prints its seed)
#   FUZZ_PLAIN_HTTP=1 scripts/fuzz-api.sh   # nodes serve plain HTTP (localnet --plain-http)
#
# The nodes serve HTTPS with the localnet's own CA (its `ca_file`), which Schemathesis is told
# to trust, and every request goes out signed as the regulator, who may read every route:
# scripts/fuzz_auth.py, a Schemathesis hooks module, signs each one as it is sent.
#
# It installs what it lacks (python3-venv from Debian; Schemathesis and the `cryptography`
# package the signing hook uses, pinned, from PyPI into a virtualenv under the target
# directory), builds the debug binaries into ${CARGO_TARGET_DIR:-target}, starts its own
# localnet (4 validators, 1 observer) under ${CARGO_TARGET_DIR:-target}/fuzz-api/ on ports
# from ${FUZZ_BASE_PORT:-29000} (p2p; HTTP 1000 above), and stops it on exit. Exit status 0 only if every case of both runs passed every check.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SCHEMATHESIS_VERSION=4.32.5
CRYPTOGRAPHY_VERSION=50.0.2
TARGET=${CARGO_TARGET_DIR:-target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
BIN=$TARGET/debug
WORK=$TARGET/fuzz-api
NET=$WORK/localnet
VENV=$WORK/venv
BASE_PORT=${FUZZ_BASE_PORT:-29000}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-50}
SEED=${FUZZ_SEED:-$RANDOM$RANDOM}
PLAIN_HTTP=${FUZZ_PLAIN_HTTP:-}
# The localnet's CA certificate (absolute), once it is generated; empty for plain HTTP.
CA=""

log() { printf '==> %s\n' "$*"; }

install() {
    bash scripts/install-deps.sh
    local missing=()
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    # Debian splits venv (and the ensurepip it needs) from python3.
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    if [ "$("$VENV/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ] ||
        ! "$VENV/bin/python" -c 'import sys, cryptography; sys.exit(cryptography.__version__ != sys.argv[1])' \
            "$CRYPTOGRAPHY_VERSION" >/dev/null 2>&1; then
        log "installing Schemathesis $SCHEMATHESIS_VERSION and cryptography $CRYPTOGRAPHY_VERSION into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
            "cryptography==$CRYPTOGRAPHY_VERSION"
    fi
}

build() {
    # --workspace --all-targets resolves features as `cargo test` does (scripts/test.sh), so
    # the black-box tests' build and this one share every compiled crate, RocksDB above all.
    log "building (debug)"
    cargo build --workspace --all-targets --locked
}

# A top-level field of the localnet manifest (empty if absent).
manifest() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v)' "$NET/localnet.json" "$1"; }

nodes() { python3 -c 'import json,sys; [print(n["name"], n["rpc_url"], n["config"]) for n in json.load(open(sys.argv[1]))["nodes"]]' "$NET/localnet.json"; }

# curl trusts the localnet's CA for https URLs.
curl_tls() { if [ -n "$CA" ]; then curl --cacert "$CA" "$@"; else curl "$@"; fi; }

height() { curl_tls -fsS --max-time 2 "$1/v1/status" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])' 2>/dev/null || echo 0; }

PIDS=()
stop() {
    # Only the processes this script started, by their ids.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

start() {
    log "generating a localnet in $NET (base port $BASE_PORT)"
    rm -rf "$NET"
    local plain=()
    [ -z "$PLAIN_HTTP" ] || plain=(--plain-http)
    "$BIN/interpool-genesis" localnet --out "$NET" --validators 4 --observers 1 --banks 2 \
        --accounts-per-bank 2 --base-port "$BASE_PORT" --chain-id fuzz "${plain[@]}" >/dev/null
    CA=$(manifest ca_file)
    [ -z "$CA" ] || CA=$NET/$CA
    mkdir -p "$NET/logs"
    trap stop EXIT
    while read -r name _ config; do
        "$BIN/interpool-node" run --config "$NET/$config" >>"$NET/logs/$name.log" 2>&1 &
        PIDS+=($!)
    done < <(nodes)
    log "waiting for blocks on every node"
    local deadline=$((SECONDS + 120))
    while read -r name rpc _; do
        until [ "$(height "$rpc")" -ge 2 ]; do
            if [ $SECONDS -ge $deadline ]; then
                log "$name has no blocks after 120 s; see $NET/logs/$name.log"
                exit 1
            fi
            sleep 0.5
        done
    done < <(nodes)
}

# Fuzzes one node; prints its failures (shortened) and summary; returns Schemathesis' exit
# status.
fuzz() {
    local name=$1 rpc=$2 reports="$WORK/reports/$1"
    rm -rf "$reports"
    mkdir -p "$reports"
    log "fuzzing $name ($rpc/v1/openapi.json): seed $SEED, $MAX_EXAMPLES examples per operation"
    local status=0 tls=()
    [ -z "$CA" ] || tls=(--tls-verify "$CA")
    # All checks, positive and negative data, every phase (the stateful one chains
    # operations through the links Schemathesis infers). One worker: with more, Hypothesis
    # (under Schemathesis) sometimes fails on its own while describing a strategy. Run from
    # the work folder, where Schemathesis and Hypothesis keep their caches. The hooks module
    # signs every request as the regulator; with TLS, the localnet's CA is the one trusted.
    (cd "$WORK" && SCHEMATHESIS_HOOKS="$ROOT/scripts/fuzz_auth.py" \
        INTERPOOL_FUZZ_KEY="$NET/$(manifest regulator_key_file)" \
        INTERPOOL_FUZZ_CHAIN_ID="$(manifest chain_id)" \
        "$VENV/bin/st" --config-file "$WORK/config.toml" run "$rpc/v1/openapi.json" \
        --checks all --mode all --phases examples,coverage,fuzzing,stateful \
        --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --request-timeout 15 \
        "${tls[@]}" --report junit --report-dir "$reports" \
        --no-color) >"$reports/output.txt" 2>&1 || status=$?
    # Failures (long request bodies cut), then the summary: cases generated, failures by check.
    sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,/^=* SUMMARY =*$/p' "$reports/output.txt" | sed '$d' |
        cut -c1-160 | grep -v '^\s*$' | head -200 || true
    sed -n '/^=* SUMMARY =*$/,$p' "$reports/output.txt"
    return $status
}

# scripts/fuzz-api.toml, plus the localnet's own account ids: half of the account and signer
# ids the fuzzer sends are real, so that it reaches accounts, histories and proofs that exist
# (random ids only ever find 404).
configure() {
    cp scripts/fuzz-api.toml "$WORK/config.toml"
    local accounts
    accounts=$(python3 -c 'import json,sys; print(", ".join(json.dumps(a["id"]) for b in json.load(open(sys.argv[1]))["banks"] for a in b["accounts"]))' "$NET/localnet.json")
    cat >>"$WORK/config.toml" <<EOF

# Added by scripts/fuzz-api.sh for its localnet.
[[operations]]
include-path-regex = "^/v1/(accounts|signers)/"
parameters = { "path.id" = { dictionary = "accounts", probability = 0.5 } }

[dictionaries.accounts]
values = [$accounts]
EOF
}

install
build
start
configure
failed=0
fuzz validator-0 "$(nodes | awk '$1 == "validator-0" { print $2 }')" || failed=1
fuzz observer-0 "$(nodes | awk '$1 == "observer-0" { print $2 }')" || failed=1
if [ $failed -eq 0 ]; then
    log "clean: no failure on either node (seed $SEED)"
else
    log "failures found (seed $SEED); full output in $WORK/reports/*/output.txt"
fi
exit $failed
