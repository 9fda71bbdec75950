#!/usr/bin/env python3
"""Where a node's CPU went, by phase, from `perf script` output with call graphs.

    phases.py PERF_SCRIPT [--folded FILE] [--json FILE]

Each sample goes to the first phase below (in this order) with a pattern that one of its
stack's frames matches: a signature check inside admission counts as verification, an index
read inside a block's commit as the commit, what is left of an HTTP request as HTTP. Prints the share of samples per
phase; --folded writes the stacks folded one per line (root first, `;`-separated, then the
count), the input of any flame graph tool; --json writes the shares.

The stacks need DWARF unwinding (`perf record --call-graph dwarf`): the release build has no
frame pointers, and with `-g` most Rust frames lose their callers.
"""

import argparse
import collections
import json
import re
import sys

# (phase, pattern): the first phase with a frame matching its pattern takes the sample.
PHASES = [
    ("signature verification", r"zip215::|curve25519_dalek|ed25519_dalek"),
    ("admission: durable record", r"save_pending|Admission::record"),
    ("admission: stateless checks", r"admission::check\b|check_stateless"),
    ("admission: mempool", r"Admission::insert|insert_answered|Admission::admit|Admission::already_pending"),
    ("http: decoding batches", r"decode_encoding|Entries::decode"),
    ("event streams", r"api::events"),
    ("views retired (freeing old state)", r"view::retire"),
    ("proposal: build", r"build_proposal"),
    ("proposal: validate", r"validate_hashed_proposal|Core::check_block\b|check_admissible"),
    ("execute: state tree", r"commit_state|smt::"),
    ("execute: transfers, queues", r"replay::execute|apply_block"),
    ("commit: decoding a certified block", r"certified_block"),
    ("store: commit block", r"Store::commit_block|ChainStore>::commit_block"),
    ("commit: mempool, published view", r"commit_hashed|after_commit"),
    ("sync and certificates", r"net::sync|net::follower|answer_sync|verify_certificate"),
    ("consensus", r"interpool_consensus|driver::"),
    ("rocksdb: flush", r"FlushJob"),
    ("rocksdb: compaction", r"Compaction"),
    ("rocksdb: reads (stack cut short)", r"MultiGet|DBImpl::Get|rocksdb_get"),
    ("rocksdb: writes (stack cut short)", r"DBImpl::Write|rocksdb_write"),
    ("p2p (libp2p, noise, yamux)", r"libp2p|yamux|snow::"),
    ("http (hyper, axum, TLS)", r"hyper|axum|tower|rustls|ring_core"),
    ("tokio runtime", r"tokio::runtime"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PHASES]
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def samples(lines):
    """Yields each sample's frames, leaf first."""
    frames = None
    for line in lines:
        if not line.strip():
            if frames is not None:
                yield frames
            frames = None
        elif not line[0].isspace():
            frames = []
        elif frames is not None:
            match = FRAME.match(line)
            if match:
                frames.append(OFFSET.sub("", match.group(1)))
    if frames is not None:
        yield frames


def phase_of(frames):
    for name, pattern in COMPILED:
        if any(pattern.search(frame) for frame in frames):
            return name
    return "other"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("script", help="perf script output")
    parser.add_argument("--folded", help="write folded stacks here")
    parser.add_argument("--json", help="write the shares here")
    args = parser.parse_args()
    phases = collections.Counter()
    folded = collections.Counter()
    total = 0
    with open(args.script, errors="replace") as lines:
        for frames in samples(lines):
            total += 1
            phases[phase_of(frames)] += 1
            if args.folded:
                folded[";".join(f.replace(";", ":") for f in reversed(frames))] += 1
    if total == 0:
        sys.exit(f"{args.script}: no samples")
    shares = {name: round(100.0 * count / total, 1) for name, count in phases.most_common()}
    for name, share in shares.items():
        print(f"{share:5.1f} %  {name}")
    print(f"({total} samples)")
    if args.folded:
        with open(args.folded, "w") as out:
            for stack, count in folded.items():
                out.write(f"{stack} {count}\n")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"samples": total, "percent": shares}, out, indent=1)


if __name__ == "__main__":
    main()
