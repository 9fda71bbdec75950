#!/usr/bin/env python3
"""The chart of one `interpool-wallet load` report: transfers acknowledged and committed per
second, and the submit-to-commit latency distribution.

    chart.py REPORT.json OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        report = json.load(f)
    seconds = report["per_second"]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(13, 4.8))

    xs = [s["second"] for s in seconds]
    rate.plot(xs, [s["accepted"] for s in seconds], label="acknowledged", color="#999999")
    rate.plot(xs, [s["committed"] for s in seconds], label="committed", color="#1f5fa8")
    steady = report["steady_state"]
    if steady["to_s"] > steady["from_s"]:
        rate.axvspan(steady["from_s"], steady["to_s"], color="#1f5fa8", alpha=0.08,
                     label="steady state: %.0f/s" % steady["committed_per_second"])
    rate.set_xlabel("seconds from the first submission")
    rate.set_ylabel("transfers per second")
    rate.set_title("throughput")
    rate.grid(alpha=0.3)
    rate.legend()

    buckets = report["latency_histogram"]
    labels = ["≤%d" % b["le_ms"] if b["le_ms"] is not None else ">%d" % buckets[-2]["le_ms"]
              for b in buckets]
    latency.bar(range(len(buckets)), [b["count"] for b in buckets], color="#1f5fa8")
    latency.set_xticks(range(len(buckets)), labels, rotation=45)
    latency.set_xlabel("submit to commit, ms")
    latency.set_ylabel("transfers")
    p = report["latency_ms"]
    latency.set_title("latency: p50 %d ms, p90 %d ms, p99 %d ms, max %d ms"
                      % (p["p50"], p["p90"], p["p99"], p["max"]))
    latency.grid(axis="y", alpha=0.3)

    figure.suptitle("%d validators, %d accounts, offered rate %s: %.0f committed/s steady, "
                    "%d committed, %d not seen"
                    % (report["validators"], report["accounts"], report["rate"],
                       steady["committed_per_second"], report["committed"], report["not_seen"]))
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
