#!/usr/bin/env python3
"""Where an iteration goes: a summary of a --trace file of an emitted program (or of ffc simulate's).

    bench/trace_summary.py TRACE.json [--rank R] [--top N]

Prints, for one rank (default 0): the iteration time, the compute stream's time by instruction kind
(forward, backward, update, fill, copy, phases waited for, ...), the communication stream's busy
time, the host's time issuing the step, and the N instructions that took longest on the compute
stream, grouped by op (part numbers dropped). Plain Python: no numpy.
"""
import argparse
import collections
import json
import re
import signal
import sys


def kind_of(name):
    if name.startswith("finish phase"):
        return "wait for phase"
    if name.startswith("phase"):
        return "phase (at once)"
    return name.split(" ", 1)[0]


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quietly, into `head`
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    with open(args.trace) as f:
        doc = json.load(f)
    events = [e for e in doc["traceEvents"] if e.get("ph") == "X" and e.get("pid") == args.rank]
    if not events:
        sys.exit(f"{args.trace}: no events of rank {args.rank}")
    lanes = collections.defaultdict(list)
    for e in events:
        lanes[e.get("tid", 0)].append(e)
    compute, comm, host = lanes[0], lanes[1], lanes[2]
    other = doc.get("otherData", {})
    span = max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)
    print(f"{args.trace}: rank {args.rank}, {other.get('title', '?')} ({other.get('backend', 'simulated')})")
    if "measured_iteration_us" in other:
        print(f"  measured iteration {other['measured_iteration_us'] / 1e3:.3f} ms (host, with the trace's own cost)")
    if "predicted_iteration_us" in other:
        print(f"  predicted iteration {other['predicted_iteration_us'] / 1e3:.3f} ms")
    busy = sum(e["dur"] for e in compute)
    print(f"  timeline {span / 1e3:.3f} ms; compute stream {busy / 1e3:.3f} ms over {len(compute)} instructions; "
          f"communication stream {sum(e['dur'] for e in comm) / 1e3:.3f} ms over {len(comm)} phases"
          + (f"; host issuing {sum(e['dur'] for e in host) / 1e3:.3f} ms" if host else ""))
    by_kind = collections.Counter()
    count = collections.Counter()
    for e in compute:
        k = kind_of(e["name"])
        by_kind[k] += e["dur"]
        count[k] += 1
    print("  compute stream by kind:")
    for k, t in by_kind.most_common():
        print(f"    {k:<18} {t / 1e3:9.3f} ms  {100 * t / busy if busy else 0:5.1f} %  ({count[k]} instructions)")
    by_op = collections.Counter()
    ops = collections.Counter()
    for e in compute:
        key = re.sub(r" part \d+$", "", e["name"])
        by_op[key] += e["dur"]
        ops[key] += 1
    print(f"  top {args.top} by compute-stream time:")
    for k, t in by_op.most_common(args.top):
        print(f"    {t / 1e3:8.3f} ms  {k}" + (f"  (x{ops[k]})" if ops[k] > 1 else ""))
    if host:
        slow = sorted(host, key=lambda e: -e["dur"])[:5]
        print("  slowest to issue (host): " + ", ".join(f"{e['name']} {e['dur']:.0f} us" for e in slow))


if __name__ == "__main__":
    main()
