#!/usr/bin/env python3
"""Delay and reordering of one network namespace's packets, in user space.

scripts/chaos.sh runs this inside a validator's namespace, with iptables rules that send
that validator's packets to and from its peers to NFQUEUE queue QUEUE. Each packet is held
for DELAY ms plus a uniformly random extra of up to JITTER ms (drawn from SEED), then let
through; a jitter larger than the gap between two packets reorders them.

This stands in for `tc qdisc ... netem`, which this project's CI kernel does not have
(CONFIG_NET_SCH_NETEM is not set); packet loss needs no help (iptables' statistic match).
It only talks to libnetfilter_queue (Debian's libnetfilter-queue1) through ctypes.

    netem.py --queue 0 --delay-ms 200 --jitter-ms 0 --seed 7

SIGTERM lets every held packet through and exits.
"""

import argparse
import ctypes
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NF_ACCEPT = 1
NFQNL_COPY_META = 1
# Most packets held at once; beyond, the kernel lets new ones through (fail-open).
QUEUE_MAXLEN = 50_000
NFQA_CFG_F_FAIL_OPEN = 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ready", help="file created once the queue is bound")
    args = parser.parse_args()

    lib = ctypes.CDLL("libnetfilter_queue.so.1", use_errno=True)
    vp = ctypes.c_void_p
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, vp, vp, vp, vp)
    lib.nfq_open.restype = vp
    lib.nfq_close.argtypes = [vp]
    lib.nfq_bind_pf.argtypes = [vp, ctypes.c_uint16]
    lib.nfq_create_queue.restype = vp
    lib.nfq_create_queue.argtypes = [vp, ctypes.c_uint16, callback_type, vp]
    lib.nfq_destroy_queue.argtypes = [vp]
    lib.nfq_set_mode.argtypes = [vp, ctypes.c_uint8, ctypes.c_uint32]
    lib.nfq_set_queue_maxlen.argtypes = [vp, ctypes.c_uint32]
    lib.nfq_set_queue_flags.argtypes = [vp, ctypes.c_uint32, ctypes.c_uint32]
    lib.nfq_fd.argtypes = [vp]
    lib.nfq_handle_packet.argtypes = [vp, ctypes.c_char_p, ctypes.c_int]
    lib.nfq_get_msg_packet_hdr.restype = vp
    lib.nfq_get_msg_packet_hdr.argtypes = [vp]
    lib.nfq_set_verdict.argtypes = [vp, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, vp]

    rng = random.Random(args.seed)
    held = []  # (due, sequence, packet id)
    counter = [0]

    def on_packet(_queue, _message, data, _user):
        header = lib.nfq_get_msg_packet_hdr(data)
        if header:
            (packet_id,) = struct.unpack(">I", ctypes.string_at(header, 4))
            extra = rng.random() * args.jitter_ms if args.jitter_ms > 0 else 0.0
            due = time.monotonic() + (args.delay_ms + extra) / 1000.0
            counter[0] += 1
            heapq.heappush(held, (due, counter[0], packet_id))
        return 0

    callback = callback_type(on_packet)  # kept alive for the library's sake
    handle = lib.nfq_open()
    if not handle:
        sys.exit("netem: nfq_open failed (root, and a kernel with NFQUEUE?)")
    lib.nfq_bind_pf(handle, socket.AF_INET)
    queue = lib.nfq_create_queue(handle, args.queue, callback, None)
    if not queue:
        sys.exit(f"netem: cannot bind NFQUEUE queue {args.queue}")
    lib.nfq_set_mode(queue, NFQNL_COPY_META, 0)
    lib.nfq_set_queue_maxlen(queue, QUEUE_MAXLEN)
    lib.nfq_set_queue_flags(queue, NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_FAIL_OPEN)
    fd = lib.nfq_fd(handle)

    # A flag, not an exception: the handler may run inside the library's callback.
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    print(f"netem: queue {args.queue}, delay {args.delay_ms} ms + up to {args.jitter_ms} ms",
          flush=True)
    if args.ready:
        open(args.ready, "w").close()
    released = 0
    try:
        while not stopping:
            now = time.monotonic()
            while held and held[0][0] <= now:
                _, _, packet_id = heapq.heappop(held)
                lib.nfq_set_verdict(queue, packet_id, NF_ACCEPT, 0, None)
                released += 1
            wait = max(0.0, held[0][0] - now) if held else 0.5
            readable, _, _ = select.select([fd], [], [], wait)
            if readable:
                try:
                    data = os.read(fd, 0x10000)
                except OSError:
                    continue  # ENOBUFS: the kernel dropped some; they count as lost
                lib.nfq_handle_packet(handle, data, len(data))
    finally:
        for _, _, packet_id in held:
            lib.nfq_set_verdict(queue, packet_id, NF_ACCEPT, 0, None)
        lib.nfq_destroy_queue(queue)
        lib.nfq_close(handle)
        print(f"netem: {released + len(held)} packets passed", flush=True)


if __name__ == "__main__":
    main()
