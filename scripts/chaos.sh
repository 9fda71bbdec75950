#!/usr/bin/env bash
# Chaos on real processes: 4 validators and 1 observer, each in its own network namespace
# with its own address, under a steady load of transfers, perturbed by a seeded schedule
# that touches at most one validator (f = 1) at a time. Then it checks what must hold.
#
#   scripts/chaos.sh [--duration S] [--seed N] [--rate R] [--release] [--bin-dir DIR]
#
#   --duration S   perturb for S seconds (default 60), and at least until every kind has
#                  run once
#   --seed N       the schedule's seed (default: random); printed, so a failure replays
#   --rate R       transfers per second (default 40)
#   --release      build the release binaries first (cargo build --release: 10-25 minutes
#                  the first time) and use them; by default the script builds nothing and
#                  uses ${CARGO_TARGET_DIR:-target}/debug, which scripts/test.sh builds
#   --bin-dir DIR  use the binaries in DIR
#
# Runs as root (namespaces, iptables, tmpfs mounts); installs what it needs from Debian.
#
# Topology: namespaces ipchaos-hub (a bridge), ipchaos-<node> for each node (10.77.0.10-14)
# and ipchaos-client (10.77.0.2: the load, the monitor and the checks), joined by veth
# pairs; nothing is added to the machine's own namespace, and no namespace has a route
# beyond 10.77.0.0/24. Each validator's data directory is a tmpfs of its own (so that one
# can fill up). All of it is removed on exit, also on failure or Ctrl-C, and leftovers of a
# killed earlier run are removed first.
#
# Perturbations (one at a time, in a seeded order, every kind in each round; their
# parameters are in scripts/chaos/chaos.py): kill -9 a validator and restart it after a
# random delay; kill -9 the validator that just acknowledged a transfer; SIGSTOP/SIGCONT;
# graceful restart (SIGTERM); partition of one validator from its peers; delay, loss and
# reordering of its packets to and from its peers; its data disk filled up (it must stop
# with a clear error, and catch up once the space is back); kill -9 of the observer.
# After each, the perturbed node must catch up before the next one starts.
#
# Checks, each printed PASS or FAIL (exit 0 only if all pass): the same block hashes and
# state roots on every node up to the common height; every transfer the API acknowledged
# reached a final outcome and each is in the chain exactly once; audit passes on every
# data directory; no validator signed two different messages of one kind for one height
# and round (in what every node received); a full disk stopped its validator cleanly; every
# perturbed node caught up. Also printed: perturbations by kind, the longest time from a
# perturbation to the next commit, the transactions' outcomes, the blocks and the seed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DURATION=60
SEED=${CHAOS_SEED:-}
RATE=40
BATCH=10
RELEASE=0
BIN=""
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=${2:?}; shift 2 ;;
        --seed) SEED=${2:?}; shift 2 ;;
        --rate) RATE=${2:?}; shift 2 ;;
        --release) RELEASE=1; shift ;;
        --bin-dir) BIN=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "chaos.sh: unknown argument $1" >&2; usage ;;
    esac
done
for number in "$DURATION" "$RATE" ${SEED:+"$SEED"}; do
    [[ $number =~ ^[0-9]+$ ]] || { echo "chaos.sh: $number is not a whole number" >&2; exit 2; }
done
if [ "$(id -u)" -ne 0 ]; then
    echo "chaos.sh: must run as root (network namespaces, iptables, tmpfs mounts): sudo $0" >&2
    exit 2
fi
SEED=${SEED:-$(($(od -An -N4 -tu4 /dev/urandom) % 1000000))}

log() { printf '==> %s\n' "$*"; }
now_ms() { date +%s%3N; }
sleep_ms() { sleep "$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')"; }

bash scripts/install-deps.sh --chaos
if [ "$RELEASE" = 1 ]; then
    log "building release binaries (the first build compiles RocksDB: 10-25 minutes)"
    cargo build --release --locked --bins
    BIN=${CARGO_TARGET_DIR:-target}/release
fi
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
for binary in interpool-node interpool-genesis interpool-wallet; do
    if [ ! -x "$BIN/$binary" ]; then
        echo "chaos.sh: $BIN/$binary is missing: run 'cargo build --workspace --all-targets'" \
            "first, or pass --release or --bin-dir DIR" >&2
        exit 2
    fi
done
BIN=$(cd "$BIN" && pwd)

# Names and addresses this script owns.
PREFIX=ipchaos
HUB=$PREFIX-hub
CLIENT=$PREFIX-client
CLIENT_ADDRESS=10.77.0.2
TMPFS_SOURCE=ipchaos-data # how the data tmpfs mounts are recognised in /proc/mounts
DISK_MB=${CHAOS_DISK_MB:-512}
VALIDATORS=(validator-0 validator-1 validator-2 validator-3)
OBSERVER=observer-0
NODES=("${VALIDATORS[@]}" "$OBSERVER")
declare -A ADDRESS PID
for i in "${!NODES[@]}"; do ADDRESS[${NODES[$i]}]=10.77.0.$((10 + i)); done

RUN=$ROOT/${CHAOS_DIR:-target/chaos}
NET=$RUN/net
LOGS=$RUN/logs
CTL=$RUN/ctl
NODES_FILE=$RUN/nodes.txt
EVENTS=$RUN/events.txt   # T_MS KIND TARGET start|end [DETAIL]
CHECKS=$RUN/checks.txt   # PASS|FAIL NAME: DETAIL
MONITOR=$RUN/heights.txt # T_MS NODE HEIGHT
# A proxy from the environment must never see this traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_COLOR=1

# Runs a command in a node's (or the client's) namespace.
in_ns() {
    local ns=$1
    shift
    ip netns exec "$PREFIX-$ns" "$@"
}
CHAOS_PY=$ROOT/scripts/chaos/chaos.py
# The interpreter itself, not a wrapper that would stand between a signal and it.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
py() { in_ns client "$PYTHON" "$CHAOS_PY" "$@"; }
# Background processes are started with `ip netns exec` itself, never through a function
# (a function would run in a subshell, and $! would be the subshell's pid, not theirs).

# --------------------------------------------------------------------- cleanup

# Everything this script (or a killed earlier run) left: the processes in its namespaces,
# its tmpfs mounts, its namespaces (with them their veths and the bridge).
cleanup() {
    set +e
    local ns pids
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-"); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086 # one argument per pid
            kill -CONT $pids 2>/dev/null
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null
        fi
    done
    for _ in $(seq 1 100); do
        pids=""
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-"); do
            pids+=$(ip netns pids "$ns" 2>/dev/null)
        done
        [ -z "$pids" ] && break
        sleep 0.1
    done
    awk -v source="$TMPFS_SOURCE" '$1 == source { print $2 }' /proc/mounts | sort -r |
        while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount"; done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-"); do
        ip netns del "$ns"
    done
}

on_exit() {
    local code=$?
    set +e
    if [ "$code" -ne 0 ] && [ -d "$NET" ]; then
        # The data directories live on tmpfs: keep a copy for the post-mortem.
        mkdir -p "$RUN/kept"
        for name in "${VALIDATORS[@]}"; do
            [ -d "$NET/$name/data" ] && cp -a "$NET/$name/data" "$RUN/kept/$name" 2>/dev/null
        done
        log "failed; logs in $LOGS, data directories copied to $RUN/kept"
    fi
    cleanup
    exit "$code"
}

# --------------------------------------------------------------------- set-up

setup_network() {
    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 up
    local i=0 name address
    for name in "${NODES[@]}" client; do
        address=${ADDRESS[$name]:-$CLIENT_ADDRESS}
        ip netns add "$PREFIX-$name"
        ip -n "$HUB" link add "veth$i" type veth peer name eth0 netns "$PREFIX-$name"
        ip -n "$HUB" link set "veth$i" master br0 up
        ip -n "$PREFIX-$name" addr add "$address/24" dev eth0
        ip -n "$PREFIX-$name" link set eth0 up
        ip -n "$PREFIX-$name" link set lo up
        i=$((i + 1))
    done
}

start_node() {
    local name=$1
    ip netns exec "$PREFIX-$name" "$BIN/interpool-node" run --config "$NET/$name/config.toml" \
        --log-level info >>"$LOGS/$name.log" 2>&1 &
    PID[$name]=$!
    echo "$!" >"$CTL/$name.pid"
}

# Whether a process is alive (not gone, not a zombie).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Waits up to $2 ms for process $1 to exit; its exit status in EXIT_STATUS (empty if it
# did not exit).
wait_exit() {
    local pid=$1 deadline=$(($(now_ms) + $2))
    EXIT_STATUS=""
    while alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.05; done
    alive "$pid" && return 0
    EXIT_STATUS=0
    wait "$pid" 2>/dev/null || EXIT_STATUS=$?
}

event() { echo "$(now_ms) $*" >>"$EVENTS"; }
verdict() { echo "$1 $2" >>"$CHECKS"; }

RECOVERIES=0
RECOVERY_LONGEST=0
RECOVERY_FAILURES=()
# Waits until node $1 is level with the others again (after a perturbation ended).
recover() {
    local name=$1 taken
    if ! alive "${PID[$name]}"; then
        RECOVERY_FAILURES+=("$name is not running (exited on its own)")
        return
    fi
    if taken=$(py caught-up --nodes "$NODES_FILE" --node "$name" --timeout 90); then
        RECOVERIES=$((RECOVERIES + 1))
        [ "$taken" -gt "$RECOVERY_LONGEST" ] && RECOVERY_LONGEST=$taken
        printf '    %s level with the others after %s ms\n' "$name" "$taken"
    else
        RECOVERY_FAILURES+=("$taken")
        log "$taken"
    fi
}

# --------------------------------------------------------------------- perturbations

# Rules on a node's own interface that touch only its traffic with its peers (the
# client's requests to its API go through).
peer_rules() {
    local name=$1
    shift
    in_ns "$name" iptables -w -I INPUT -i eth0 ! -s "$CLIENT_ADDRESS" "$@"
    in_ns "$name" iptables -w -I OUTPUT -o eth0 ! -d "$CLIENT_ADDRESS" "$@"
}
clear_rules() { in_ns "$1" iptables -w -F; }

kill_and_restart() {
    local kind=$1 name=$2 delay=$3
    event "$kind" "$name" start
    kill -KILL "${PID[$name]}"
    wait "${PID[$name]}" 2>/dev/null || true
    sleep_ms "$delay"
    start_node "$name"
    event "$kind" "$name" end
    recover "$name"
}

kill_acknowledger() {
    local delay=$1 trigger=$CTL/kill-acknowledger name at
    rm -f "$trigger.done"
    touch "$trigger"
    local deadline=$(($(now_ms) + 15000))
    while [ ! -s "$trigger.done" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.02; done
    if [ ! -s "$trigger.done" ] && rm "$trigger" 2>/dev/null; then
        log "kill-acknowledger: no transfer acknowledged within 15 s; skipped"
        event kill-acknowledger - skipped
        return
    fi
    while [ ! -s "$trigger.done" ]; do sleep 0.02; done # the submitter is killing it now
    read -r name at <"$trigger.done"
    echo "$at kill-acknowledger $name start" >>"$EVENTS"
    printf '    %s killed right after it acknowledged transfers\n' "$name"
    wait "${PID[$name]}" 2>/dev/null || true
    sleep_ms "$delay"
    start_node "$name"
    event kill-acknowledger "$name" end
    recover "$name"
}

stop_and_continue() {
    local name=$1 hold=$2
    event stop "$name" start
    kill -STOP "${PID[$name]}"
    sleep_ms "$hold"
    kill -CONT "${PID[$name]}"
    event stop "$name" end
    recover "$name"
}

graceful_restart() {
    local name=$1 delay=$2
    event restart "$name" start
    kill -TERM "${PID[$name]}"
    wait_exit "${PID[$name]}" 30000
    if [ "$EXIT_STATUS" != 0 ]; then
        RECOVERY_FAILURES+=("$name did not stop gracefully on SIGTERM (exit status '${EXIT_STATUS:-still running after 30 s}')")
        alive "${PID[$name]}" && kill -KILL "${PID[$name]}"
        wait "${PID[$name]}" 2>/dev/null || true
    fi
    sleep_ms "$delay"
    start_node "$name"
    event restart "$name" end
    recover "$name"
}

partition() {
    local name=$1 hold=$2
    event partition "$name" start
    peer_rules "$name" -j DROP
    sleep_ms "$hold"
    clear_rules "$name"
    event partition "$name" end
    recover "$name"
}

# Delay (jitter 0) or reordering (jitter > 0) of a node's packets to and from its peers.
netem() {
    local kind=$1 name=$2 hold=$3 delay=$4 jitter=$5 ready=$CTL/netem.ready pid
    rm -f "$ready"
    ip netns exec "$PREFIX-$name" "$PYTHON" "$ROOT/scripts/chaos/netem.py" --queue 0 --delay-ms "$delay" \
        --jitter-ms "$jitter" --seed "$SEED" --ready "$ready" >>"$LOGS/netem.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do [ -e "$ready" ] && break; sleep 0.05; done
    if [ ! -e "$ready" ]; then
        RECOVERY_FAILURES+=("$kind: the packet delayer did not start (see $LOGS/netem.log)")
        kill "$pid" 2>/dev/null || true
        return
    fi
    event "$kind" "$name" start
    peer_rules "$name" -j NFQUEUE --queue-num 0 --queue-bypass
    sleep_ms "$hold"
    clear_rules "$name"
    kill -TERM "$pid"
    wait "$pid" || true
    event "$kind" "$name" end
    recover "$name"
}

loss() {
    local name=$1 hold=$2 percent=$3
    event loss "$name" start
    peer_rules "$name" -m statistic --mode random \
        --probability "$(awk -v p="$percent" 'BEGIN { printf "%.2f", p / 100 }')" -j DROP
    sleep_ms "$hold"
    clear_rules "$name"
    event loss "$name" end
    recover "$name"
}

DISK_FULL_RESULTS=()
# Fills the validator's data tmpfs. It must stop by itself with a clear error in its log;
# then the space is freed and it starts again and catches up.
disk_full() {
    local name=$1 hold=$2 data=$NET/$1/data logged error
    logged=$(stat -c %s "$LOGS/$name.log")
    event disk-full "$name" start
    dd if=/dev/zero of="$data/chaos-filler" bs=1M 2>/dev/null || true # until ENOSPC
    wait_exit "${PID[$name]}" 30000
    # The error it stopped with (the last line that names the full disk).
    error=$(tail -c +"$((logged + 1))" "$LOGS/$name.log" | grep -i "no space left on device" | tail -n 1 || true)
    if [ -z "$EXIT_STATUS" ]; then
        DISK_FULL_RESULTS+=("FAIL $name still running 30 s after its disk filled up")
        kill -KILL "${PID[$name]}"
        wait "${PID[$name]}" 2>/dev/null || true
    elif [ "$EXIT_STATUS" -ge 128 ] || [ -z "$error" ]; then
        DISK_FULL_RESULTS+=("FAIL $name exited with status $EXIT_STATUS, log: $(tail -n 3 "$LOGS/$name.log" | tr '\n' ' ')")
    else
        DISK_FULL_RESULTS+=("PASS $name stopped (exit status $EXIT_STATUS): ${error:0:200}")
    fi
    printf '    %s\n' "${DISK_FULL_RESULTS[-1]}"
    sleep_ms "$hold"
    rm -f "$data/chaos-filler"
    start_node "$name"
    event disk-full "$name" end
    recover "$name"
}

perturb() {
    local kind=$1 target=$2 a=$3 b=$4
    printf '  %6.1f s  %-17s %-12s %s %s\n' "$(awk -v t="$(($(now_ms) - STARTED))" 'BEGIN { print t / 1000 }')" \
        "$kind" "$target" "$a" "$b"
    case "$kind" in
        kill | observer-kill) kill_and_restart "$kind" "$target" "$a" ;;
        kill-acknowledger) kill_acknowledger "$a" ;;
        stop) stop_and_continue "$target" "$a" ;;
        restart) graceful_restart "$target" "$a" ;;
        partition) partition "$target" "$a" ;;
        delay) netem delay "$target" "$a" "$b" 0 ;;
        reorder) netem reorder "$target" "$a" 5 "$b" ;;
        loss) loss "$target" "$a" "$b" ;;
        disk-full) disk_full "$target" "$a" ;;
        *) echo "chaos.sh: unknown kind $kind" >&2; exit 1 ;;
    esac
}

# --------------------------------------------------------------------- the run

trap on_exit EXIT
trap 'exit 130' INT TERM
log "chaos: seed $SEED, duration $DURATION s, $RATE transfers/s, binaries from $BIN"
cleanup # leftovers of an earlier run that was killed
rm -rf "$RUN"
mkdir -p "$LOGS" "$CTL"
touch "$EVENTS" "$CHECKS" "$MONITOR"

log "network namespaces: $HUB (bridge), ${NODES[*]/#/$PREFIX-}, $CLIENT"
setup_network
"$BIN/interpool-genesis" localnet --out "$NET" --validators 4 --observers 1 --banks 4 \
    --accounts-per-bank 5 --chain-id interpool-chaos --plain-http >/dev/null
# Plain HTTP inside the namespaces this run makes (the certificates name 127.0.0.1, the nodes
# here listen on 10.77.0.x); the harness's reads are signed as the regulator (ADR 0014).
export INTERPOOL_CHAOS_KEY="$NET/keys/regulator.json" INTERPOOL_CHAOS_CHAIN_ID=interpool-chaos
addresses=""
for name in "${NODES[@]}"; do addresses+="$name=${ADDRESS[$name]},"; done
"$PYTHON" "$CHAOS_PY" configure --net "$NET" --addresses "${addresses%,}" --nodes "$NODES_FILE"
for name in "${VALIDATORS[@]}"; do
    mkdir -p "$NET/$name/data"
    mount -t tmpfs -o "size=${DISK_MB}m" "$TMPFS_SOURCE" "$NET/$name/data"
done
for name in "${NODES[@]}"; do start_node "$name"; done
py wait --nodes "$NODES_FILE" --height 2 --timeout 120 >&2 || { log "the localnet did not start"; exit 1; }
for name in "${NODES[@]}"; do
    # The harness's own bookkeeping: a signal to PID[name] must reach the node itself.
    exe=$(readlink "/proc/${PID[$name]}/exe" || true)
    [[ $exe == */interpool-node ]] || { log "pid ${PID[$name]} of $name is '$exe', not the node"; exit 1; }
done
log "localnet up: ${NODES[*]} at 10.77.0.10-14; each validator's data on a ${DISK_MB} MiB tmpfs"

# The load: transfers signed by the load generator, submitted by the chaos submitter.
transfers=$((RATE * (DURATION + 300)))
in_ns client "$BIN/interpool-wallet" load --localnet "$NET" --transfers "$transfers" \
    --sign-only "$RUN/signed.txt" >/dev/null
ip netns exec "$CLIENT" "$PYTHON" "$CHAOS_PY" monitor --nodes "$NODES_FILE" --out "$MONITOR" \
    >>"$LOGS/monitor.log" 2>&1 &
MONITOR_PID=$!
ip netns exec "$CLIENT" "$PYTHON" "$CHAOS_PY" submit --nodes "$NODES_FILE" \
    --signed "$RUN/signed.txt" --acked "$RUN/acked.txt" \
    --rate "$RATE" --batch "$BATCH" --duration "$((DURATION + 300))" \
    --trigger "$CTL/kill-acknowledger" --pids "$CTL" >>"$LOGS/submitter.log" 2>&1 &
SUBMITTER_PID=$!

py schedule --seed "$SEED" --validators "$(IFS=,; echo "${VALIDATORS[*]}")" \
    --observer "$OBSERVER" >"$RUN/schedule.txt"
KINDS=$(awk '{ print $3 }' "$RUN/schedule.txt" | sort -u | wc -l) # every kind is in each round
log "perturbations (seed $SEED; schedule in $RUN/schedule.txt): time, kind, target, parameters"
sleep 2 # the load running before the first perturbation
STARTED=$(now_ms)
while read -r index gap kind target a b; do
    if [ "$index" -ge "$KINDS" ] && [ $(($(now_ms) - STARTED)) -ge $((DURATION * 1000)) ]; then
        break
    fi
    sleep_ms "$gap"
    perturb "$kind" "$target" "$a" "$b"
done <"$RUN/schedule.txt"
log "perturbations done after $(($(now_ms) - STARTED)) ms; stopping the load"

kill -TERM "$SUBMITTER_PID"
wait "$SUBMITTER_PID" || verdict FAIL "load: the submitter failed (see $LOGS/submitter.log)"
tail -n 1 "$LOGS/submitter.log"
for name in "${NODES[@]}"; do
    alive "${PID[$name]}" || RECOVERY_FAILURES+=("$name is not running at the end")
done

log "checking: outcomes of the acknowledged transfers, then every node's chain"
py check --nodes "$NODES_FILE" --acked "$RUN/acked.txt" --checks "$CHECKS" \
    --stats "$RUN/stats.json" --drain 120 || verdict FAIL "check: chaos.py check failed"
kill -TERM "$MONITOR_PID"
wait "$MONITOR_PID" || true

log "stopping the nodes (SIGTERM); audit and equivocation check of their data"
for name in "${NODES[@]}"; do
    kill -TERM "${PID[$name]}" 2>/dev/null || true
done
for name in "${NODES[@]}"; do
    wait_exit "${PID[$name]}" 30000
    [ -n "$EXIT_STATUS" ] || { kill -KILL "${PID[$name]}"; wait "${PID[$name]}" 2>/dev/null || true; }
done
audits=()
audit_failures=()
for name in "${NODES[@]}"; do
    if report=$("$BIN/interpool-node" audit --data-dir "$NET/$name/data" \
        --genesis "$NET/genesis.json" --json 2>"$LOGS/audit-$name.err"); then
        audits+=("$name $(python3 -c 'import json,sys; print(json.load(sys.stdin)["blocks"])' <<<"$report") blocks")
    else
        audit_failures+=("$name: $report $(head -c 300 "$LOGS/audit-$name.err")")
    fi
done
if [ ${#audit_failures[@]} -eq 0 ]; then
    verdict PASS "audit of every data directory: $(printf '%s; ' "${audits[@]}")"
else
    verdict FAIL "audit of every data directory: ${audit_failures[*]}"
fi
journals=()
for name in "${NODES[@]}"; do
    [ -f "$NET/$name/data/consensus-journal" ] && journals+=("$NET/$name/data/consensus-journal")
done
if findings=$("$BIN/interpool-node" equivocations --genesis "$NET/genesis.json" "${journals[@]}" 2>&1); then
    verdict PASS "no equivocation in ${#journals[@]} journals: $(python3 -c 'import json, sys
f = json.load(sys.stdin)
print("%d validly signed messages of %d" % (f["valid"], f["messages"]))' <<<"$findings")"
else
    verdict FAIL "no equivocation: ${findings:0:2000}"
fi
if [ ${#DISK_FULL_RESULTS[@]} -eq 0 ]; then
    verdict FAIL "full disk: never perturbed"
elif printf '%s\n' "${DISK_FULL_RESULTS[@]}" | grep -q '^FAIL'; then
    verdict FAIL "full disk stops the validator cleanly: $(printf '%s; ' "${DISK_FULL_RESULTS[@]}")"
else
    verdict PASS "full disk stops the validator cleanly (${#DISK_FULL_RESULTS[@]}): ${DISK_FULL_RESULTS[0]#PASS }"
fi
if [ ${#RECOVERY_FAILURES[@]} -eq 0 ]; then
    verdict PASS "every perturbed node caught up: $RECOVERIES times, the longest in $RECOVERY_LONGEST ms after its perturbation ended"
else
    verdict FAIL "every perturbed node caught up: $(printf '%s; ' "${RECOVERY_FAILURES[@]}")"
fi
py report --events "$EVENTS" --monitor "$MONITOR" --checks "$CHECKS" --stats "$RUN/stats.json" \
    --seed "$SEED" --duration "$DURATION"
