#!/usr/bin/env python3
"""The parts of scripts/chaos.sh that are easier in Python than in bash.

    chaos.py configure ... a generated localnet moved onto the namespaces' addresses,
                           with journals on and the read limits lifted for the checks
    chaos.py schedule --seed N --rounds K --validators a,b,c,d --observer o
        the seeded schedule of perturbations, one a line:
        INDEX GAP_MS KIND TARGET A B   (A and B: the kind's parameters, below)
    chaos.py submit ...    the steady load: pre-signed transfers, in batches, failing over
                           between validators; records what the API acknowledged
    chaos.py monitor ...   every node's height, polled, with the time it changed
    chaos.py wait ...      waits until every node is at a height
    chaos.py caught-up ... waits until one node is level with the others
    chaos.py check ...     after the run: outcomes of the acknowledged transfers, the
                           chain on every node block by block
    chaos.py report ...    the summary: checks, perturbations by kind, recovery times

Every HTTP request goes straight to the nodes' addresses (proxies from the environment
are ignored). The script runs these inside its client network namespace.
"""

import argparse
import collections
import concurrent.futures
import hashlib
import json
import os
import random
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

# What each kind does with its parameters A and B (milliseconds unless said otherwise).
KINDS = {
    "kill": "kill -9 a validator; start it again after A ms",
    "kill-acknowledger": "kill -9 the validator that just acknowledged a transfer; start it "
    "again after A ms",
    "stop": "SIGSTOP a validator for A ms, then SIGCONT",
    "restart": "SIGTERM a validator, wait for it to exit, start it again after A ms",
    "partition": "cut a validator off from every peer for A ms",
    "delay": "hold a validator's packets to and from its peers B ms each way, for A ms",
    "loss": "drop B % of a validator's packets to and from its peers, for A ms",
    "reorder": "hold a validator's packets 5 ms plus up to B ms at random (reordering "
    "them), for A ms",
    "disk-full": "fill a validator's data disk; once it has stopped, free the space after "
    "A ms and start it again",
    "observer-kill": "kill -9 the observer; start it again after A ms",
}

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Reads are signed requests (ADR 0014): the key file and chain id come from the environment
# (scripts/chaos.sh sets them to the localnet's regulator, who may read everything).
SIGNER = None


def signer():
    """(private key, public key hex, chain id), or None when no key is configured."""
    global SIGNER
    if SIGNER is None and os.environ.get("INTERPOOL_CHAOS_KEY"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        with open(os.environ["INTERPOOL_CHAOS_KEY"]) as f:
            secret = bytes.fromhex(json.load(f)["secret_key"])
        key = Ed25519PrivateKey.from_private_bytes(secret)
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        SIGNER = (key, public, os.environ["INTERPOOL_CHAOS_CHAIN_ID"])
    return SIGNER


def signed_headers(method, url, body):
    """The four x-interpool-* headers of a signed request (ADR 0014)."""
    key, public, chain_id = signer()
    parts = urllib.parse.urlsplit(url)
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    timestamp = str(now_ms())
    nonce = secrets.token_hex(16)
    message = "\n".join([
        "interpool-request-v1", chain_id, method, path_and_query, timestamp, nonce,
        hashlib.sha256(body or b"").hexdigest(),
    ]).encode()
    return {
        "x-interpool-key": public,
        "x-interpool-timestamp": timestamp,
        "x-interpool-nonce": nonce,
        "x-interpool-signature": key.sign(message).hex(),
    }


def now_ms():
    return int(time.time() * 1000)


def request(url, body=None, timeout=2.0):
    """(status, JSON answer); raises OSError (urllib's errors included) without an answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json"} if body is not None else {}
    if data is None and signer() is not None:
        headers.update(signed_headers("GET", url, b""))
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            answer = json.loads(error.read() or b"null")
        except ValueError:
            answer = None
        return error.code, answer


def height(url, timeout=1.0):
    try:
        status, answer = request(url + "/v1/status", timeout=timeout)
    except (OSError, ValueError):
        return None
    return answer["height"] if status == 200 else None


def read_nodes(path):
    """[{name, role, url}] from the script's nodes file (NAME ROLE URL a line)."""
    nodes = []
    with open(path) as f:
        for line in f:
            name, role, url = line.split()
            nodes.append({"name": name, "role": role, "url": url})
    return nodes


def write_line(path, text):
    with open(path, "a") as f:
        f.write(text + "\n")


# ----------------------------------------------------------------------------- configure


def configure(args):
    """Moves a localnet from 127.0.0.1 onto one address per node (NAME=ADDRESS,...): each
    node listens on its own, dials its peers at theirs, and the manifest says where they
    are. Turns the consensus journal on, and lifts the per-client read and write rates
    (the checks read every block of every node from one address). Writes the nodes file
    (NAME ROLE URL a line)."""
    addresses = dict(pair.split("=") for pair in args.addresses.split(","))
    manifest_path = os.path.join(args.net, "localnet.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    by_port = {}
    for node in manifest["nodes"]:
        for where in (node["p2p_address"], node["rpc_url"]):
            by_port[re.search(r"(\d+)$", where).group(1)] = addresses[node["name"]]

    def move(text):
        return re.sub(r"127\.0\.0\.1(:|/tcp/)(\d+)",
                      lambda m: by_port[m.group(2)] + m.group(1) + m.group(2), text)

    for node in manifest["nodes"]:
        path = os.path.join(args.net, node["config"])
        with open(path) as f:
            text = move(f.read())
        for key, value in (("journal", "true"), ("rate_limit_per_second", "1000000"),
                           ("rate_limit_burst", "1000000"), ("max_request_nonces", "2000000"),
                           ("max_request_nonces_per_key", "2000000")):
            text, n = re.subn(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
            if n != 1:
                sys.exit(f"configure: {path} has no single `{key} = ...` line")
        with open(path, "w") as f:
            f.write(text)
    with open(manifest_path) as f:
        text = move(f.read())
    with open(manifest_path, "w") as f:
        f.write(text)
    with open(args.nodes, "w") as f:
        for node in json.loads(text)["nodes"]:
            f.write(f"{node['name']} {node['role']} {node['rpc_url']}\n")


def wait(args):
    """Exit 0 once every node answers at --height or above; 1 after --timeout s."""
    nodes = read_nodes(args.nodes)
    started = time.time()
    while time.time() - started < args.timeout:
        heights = {n["name"]: height(n["url"]) for n in nodes}
        if all(h is not None and h >= args.height for h in heights.values()):
            return 0
        time.sleep(0.5)
    print(f"not every node at height {args.height} after {args.timeout} s: {heights}")
    return 1


# ----------------------------------------------------------------------------- schedule


def schedule(args):
    """Rounds of every kind in a seeded order, each with a seeded target and parameters."""
    rng = random.Random(args.seed)
    validators = args.validators.split(",")
    index = 0
    for _ in range(args.rounds):
        kinds = sorted(KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            target = rng.choice(validators)
            gap = rng.randint(300, 1500)
            a, b = 0, 0
            if kind in ("kill", "restart", "observer-kill", "kill-acknowledger"):
                a = rng.randint(200, 3000)
            elif kind == "stop":
                a = rng.randint(1000, 4000)
            elif kind == "partition":
                a = rng.randint(2000, 5000)
            elif kind == "delay":
                a, b = rng.randint(2000, 5000), rng.randint(50, 300)
            elif kind == "loss":
                a, b = rng.randint(2000, 5000), rng.randint(10, 40)
            elif kind == "reorder":
                a, b = rng.randint(2000, 5000), rng.randint(10, 60)
            elif kind == "disk-full":
                a = rng.randint(500, 2000)
            if kind == "observer-kill":
                target = args.observer
            if kind == "kill-acknowledger":
                target = "-"  # whichever validator acknowledges next
            print(index, gap, kind, target, a, b)
            index += 1


# ----------------------------------------------------------------------------- submit

# Refusals that say "not now" or "not here": the same transfer goes to the next validator.
RETRY = {
    "unavailable",  # the node could not record it (its disk is full)
    "mempool_full",
    "too_many_pending",
    "rate_limited",
    "busy",
    "nonce_too_far_ahead",  # a node that is behind
    "validity_too_long",  # a node that is far behind
}
# The transfer is already in the system (a retry of what a node took before it died).
KNOWN = {"already_pending", "already_included"}


def submit(args):
    """Sends the signed transfers at --rate in batches of --batch to the validators in turn.

    A batch that gets no answer (node killed, stopped, cut off, out of disk) is sent again
    to the next validator, and so are its entries refused with a code in RETRY, until every
    entry is acknowledged, known or refused for good: a transfer's nonce never stays
    unused, so no later transfer of its payer waits behind a gap the load made.
    """
    nodes = [n for n in read_nodes(args.nodes) if n["role"] == "validator"]
    plan = []
    with open(args.signed) as f:
        for line in f:
            tx_hash, tx_hex = line.split()
            plan.append((tx_hash, tx_hex))
    acked = open(args.acked, "a", buffering=1)
    other = open(args.acked + ".other", "a", buffering=1)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    started = time.time()
    deadline = started + args.duration
    turn = 0
    counts = collections.Counter()
    for k in range(0, len(plan), args.batch):
        due = started + k / args.rate
        if stopping or due > deadline:
            break
        time.sleep(max(0.0, due - time.time()))
        pending = plan[k : k + args.batch]
        give_up = time.time() + args.patience
        while pending:
            if time.time() > give_up:
                for tx_hash, _ in pending:
                    other.write(f"{tx_hash} - abandoned\n")
                counts["abandoned"] += len(pending)
                break
            node = nodes[turn % len(nodes)]
            turn += 1
            try:
                status, answer = request(
                    node["url"] + "/v1/transactions/batch",
                    {"txs": [tx_hex for _, tx_hex in pending]},
                    timeout=args.request_timeout,
                )
            except (OSError, ValueError):
                counts["no_answer"] += 1
                time.sleep(0.05)
                continue
            if status != 200:
                counts[f"http_{status}"] += 1
                time.sleep(0.1)
                continue
            results = answer["results"]
            if any("hash" in r for r in results) and os.path.exists(args.trigger):
                kill_acknowledger(args, node["name"])
            t = now_ms()
            retry = []
            for (tx_hash, tx_hex), result in zip(pending, results):
                if "hash" in result:
                    acked.write(f"{tx_hash} {node['name']} {t}\n")
                    counts["acknowledged"] += 1
                    continue
                code = result["error"]["code"]
                if code in RETRY:
                    retry.append((tx_hash, tx_hex))
                    counts[f"retried_{code}"] += 1
                else:
                    other.write(f"{tx_hash} {node['name']} {code}\n")
                    counts["known" if code in KNOWN else f"refused_{code}"] += 1
            pending = retry
            if retry:
                time.sleep(0.1)
    print("submitter:", json.dumps(dict(sorted(counts.items()))), flush=True)


def kill_acknowledger(args, name):
    """Kills the validator that just acknowledged transfers, at once (the trigger's kind)."""
    try:
        os.remove(args.trigger)
    except FileNotFoundError:
        return
    with open(os.path.join(args.pids, f"{name}.pid")) as f:
        pid = int(f.read())
    os.kill(pid, signal.SIGKILL)
    write_line(args.trigger + ".done", f"{name} {now_ms()}")


# ----------------------------------------------------------------------------- monitor


def monitor(args):
    """Every node's height, polled every --interval s; a line `T_MS NAME HEIGHT` when it
    changes."""
    nodes = read_nodes(args.nodes)
    lock = threading.Lock()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    out = open(args.out, "a", buffering=1)

    def poll(node):
        last = None
        while not stopping.is_set():
            h = height(node["url"], timeout=args.interval * 5)
            if h is not None and h != last:
                with lock:
                    out.write(f"{now_ms()} {node['name']} {h}\n")
                last = h
            stopping.wait(args.interval)

    threads = [threading.Thread(target=poll, args=(n,), daemon=True) for n in nodes]
    for t in threads:
        t.start()
    while not stopping.is_set():
        stopping.wait(0.5)


# ----------------------------------------------------------------------------- caught-up


def caught_up(args):
    """Exit 0 once --node answers at a height no more than one block behind every other
    node's highest (and prints how long that took, ms); exit 1 after --timeout s."""
    nodes = read_nodes(args.nodes)
    target = next(n for n in nodes if n["name"] == args.node)
    others = [n for n in nodes if n["name"] != args.node]
    started = time.time()
    while time.time() - started < args.timeout:
        mine = height(target["url"])
        best = max((h for h in (height(n["url"]) for n in others) if h is not None), default=None)
        if mine is not None and best is not None and mine + 1 >= best:
            print(int((time.time() - started) * 1000))
            return 0
        time.sleep(0.2)
    print(f"{args.node} not level with the others after {args.timeout} s "
          f"(at {height(target['url'])}, the others at most {best})")
    return 1


# ----------------------------------------------------------------------------- check


def check(args):
    """Waits (at most --drain s) until every acknowledged transfer has a final outcome on
    the first node, then compares every node's chain block by block up to the common
    height and counts each transaction's occurrences in it. Appends `PASS|FAIL name:
    detail` lines to --checks and writes the numbers to --stats (JSON)."""
    nodes = read_nodes(args.nodes)
    acked = {}
    with open(args.acked) as f:
        for line in f:
            tx_hash, name, t = line.split()
            acked.setdefault(tx_hash, (name, int(t)))
    reference = nodes[0]["url"]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)

    def status_of(tx_hash):
        for _ in range(5):
            try:
                code, answer = request(f"{reference}/v1/transactions/{tx_hash}", timeout=5)
                if code == 200:
                    return answer["status"]
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        return "no_answer"

    final = {"committed", "rejected", "expired"}
    statuses = {}
    waiting = set(acked)
    drain_started = time.time()
    while True:
        asked = sorted(waiting)
        for tx_hash, status in zip(asked, pool.map(status_of, asked)):
            statuses[tx_hash] = status
        waiting = {h for h in waiting if statuses[h] not in final}
        if not waiting or time.time() - drain_started > args.drain:
            break
        time.sleep(1)
    drain_seconds = time.time() - drain_started
    by_status = collections.Counter(statuses.values())
    stats = {
        "acknowledged": len(acked),
        "committed": by_status.get("committed", 0),
        "rejected": by_status.get("rejected", 0),
        "expired": by_status.get("expired", 0),
        "not_final": len(waiting),
        "not_final_by_status": dict(collections.Counter(statuses[h] for h in waiting)),
        "drain_seconds": round(drain_seconds, 1),
    }
    if not acked:
        verdict(args, False, "acknowledged transfers final", "no transfer was acknowledged")
    elif waiting:
        example = sorted(waiting)[:5]
        verdict(args, False, "acknowledged transfers final",
                f"{len(waiting)} of {len(acked)} not final after {args.drain} s "
                f"({stats['not_final_by_status']}), e.g. "
                + ", ".join(f"{h} (acknowledged by {acked[h][0]})" for h in example))
    else:
        verdict(args, True, "acknowledged transfers final",
                f"all {len(acked)}: {stats['committed']} committed, {stats['rejected']} "
                f"rejected, {stats['expired']} expired (drained in {drain_seconds:.1f} s)")

    # Every node level with the reference, then the chains compared up to the lowest.
    target = height(reference) or 0
    level_started = time.time()
    while time.time() - level_started < 60:
        heights = {n["name"]: height(n["url"]) for n in nodes}
        if all(h is not None and h >= target for h in heights.values()):
            break
        time.sleep(0.5)
    heights = {n["name"]: height(n["url"]) for n in nodes}
    lagging = {k: v for k, v in heights.items() if v is None or v < target}
    verdict(args, not lagging, "every node at the chain's height",
            f"{target} reached by all" if not lagging else f"behind {target}: {lagging}")
    common = min((h for h in heights.values() if h is not None), default=0)
    stats["blocks"] = common

    def block(node, h):
        for _ in range(5):
            try:
                code, answer = request(f"{node['url']}/v1/blocks/{h}", timeout=10)
                if code == 200:
                    return answer["hash"], answer["state_root"], answer["transactions"]
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        return None

    differ = []
    occurrences = collections.Counter()
    for h in range(1, common + 1):
        seen = list(pool.map(lambda n: block(n, h), nodes))
        if any(s is None for s in seen):
            differ.append(f"height {h}: no answer from "
                          + ",".join(n["name"] for n, s in zip(nodes, seen) if s is None))
            continue
        if len({(s[0], s[1]) for s in seen}) != 1:
            differ.append(f"height {h}: " + ", ".join(
                f"{n['name']} {s[0][:12]}/{s[1][:12]}" for n, s in zip(nodes, seen)))
        occurrences.update(seen[0][2])
    verdict(args, not differ, "same block hashes and state roots on every node",
            f"heights 1 to {common} on {len(nodes)} nodes" if not differ
            else f"{len(differ)} heights differ: " + "; ".join(differ[:5]))
    twice = {h: c for h, c in occurrences.items() if c > 1}
    included = {h for h, s in statuses.items() if s in final}
    missing = [h for h in included if occurrences[h] != 1]
    stats["transactions_in_chain"] = sum(occurrences.values())
    ok = not twice and not missing
    verdict(args, ok, "each final acknowledged transfer in the chain exactly once",
            f"{len(included)} found once each; {stats['transactions_in_chain']} transactions "
            "in the chain, none twice" if ok else
            f"in the chain more than once: {len(twice)} {sorted(twice)[:3]}; final but not "
            f"found exactly once: {len(missing)} {sorted(missing)[:3]}")
    with open(args.stats, "w") as f:
        json.dump(stats, f)
    return 0


def verdict(args, ok, name, detail):
    write_line(args.checks, f"{'PASS' if ok else 'FAIL'} {name}: {detail}")


# ----------------------------------------------------------------------------- report


def report(args):
    """Prints every check, the perturbations by kind, and for each the time from its start
    to the next commit anywhere (the monitor's first higher height; resolution: its poll
    interval)."""
    events = []
    with open(args.events) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4 and parts[3] == "start":
                events.append((int(parts[0]), parts[1], parts[2]))
    samples = []
    with open(args.monitor) as f:
        for line in f:
            t, name, h = line.split()
            samples.append((int(t), name, int(h)))
    samples.sort()
    recovery = {}
    for t0, kind, target in events:
        best = max((h for t, _, h in samples if t <= t0), default=0)
        after = next((t for t, _, h in samples if t > t0 and h > best), None)
        recovery.setdefault(kind, []).append(None if after is None else after - t0)
    print()
    print(f"chaos: seed {args.seed}, {args.duration} s of perturbation under load")
    print("checks:")
    failed = 0
    with open(args.checks) as f:
        for line in f:
            print("  " + line.rstrip())
            failed += line.startswith("FAIL")
    print("perturbations by kind (count; longest and median time from its start to the next "
          "commit, ms):")
    worst = (0, "-")
    for kind in sorted(KINDS):
        times = recovery.get(kind, [])
        known = sorted(t for t in times if t is not None)
        unknown = len(times) - len(known)
        line = f"  {kind:18} {len(times):4}"
        if known:
            line += f"   longest {known[-1]:6}   median {known[len(known) // 2]:6}"
            worst = max(worst, (known[-1], kind))
        if unknown:
            line += f"   ({unknown} with no later commit seen)"
        print(line)
    print(f"  total              {len(events):4}")
    print(f"longest perturbation to next commit: {worst[0]} ms ({worst[1]})")
    stats = {}
    if os.path.exists(args.stats):
        with open(args.stats) as f:
            stats = json.load(f)
    print("transactions: {} acknowledged, {} committed, {} rejected, {} expired, {} not final"
          .format(*(stats.get(k, "?") for k in
                    ("acknowledged", "committed", "rejected", "expired", "not_final"))))
    print(f"blocks: {stats.get('blocks', '?')} (common height of every node)")
    print(f"replay: scripts/chaos.sh --duration {args.duration} --seed {args.seed}")
    print("result: " + ("PASS" if failed == 0 else f"FAIL ({failed} checks failed)"))
    return 0 if failed == 0 else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("configure")
    p.add_argument("--net", required=True)
    p.add_argument("--addresses", required=True)
    p.add_argument("--nodes", required=True)

    p = commands.add_parser("wait")
    p.add_argument("--nodes", required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--timeout", type=float, default=120)

    p = commands.add_parser("schedule")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--validators", required=True)
    p.add_argument("--observer", required=True)

    p = commands.add_parser("submit")
    p.add_argument("--nodes", required=True)
    p.add_argument("--signed", required=True)
    p.add_argument("--acked", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--request-timeout", type=float, default=2.0)
    p.add_argument("--patience", type=float, default=120.0)
    p.add_argument("--trigger", required=True)
    p.add_argument("--pids", required=True)

    p = commands.add_parser("monitor")
    p.add_argument("--nodes", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.1)

    p = commands.add_parser("caught-up")
    p.add_argument("--nodes", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--timeout", type=float, default=60)

    p = commands.add_parser("check")
    p.add_argument("--nodes", required=True)
    p.add_argument("--acked", required=True)
    p.add_argument("--checks", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--drain", type=float, default=120)

    p = commands.add_parser("report")
    p.add_argument("--events", required=True)
    p.add_argument("--monitor", required=True)
    p.add_argument("--checks", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--duration", required=True)

    args = parser.parse_args()
    handler = {
        "configure": configure,
        "wait": wait,
        "schedule": schedule,
        "submit": submit,
        "monitor": monitor,
        "caught-up": caught_up,
        "check": check,
        "report": report,
    }[args.command]
    sys.exit(handler(args) or 0)


if __name__ == "__main__":
    main()
