#!/usr/bin/env python3
"""Where an iteration goes: a summary of a --trace file of an emitted program (or of ffc simulate's).

    bench/trace_summary.py TRACE.json [--rank R] [--top N] [--against SIMULATED.json]

Prints, for one rank (default 0): the iteration time, the compute stream's time by instruction kind
(forward, backward, update, fill, copy, phases waited for, ...), the communication stream's busy
time, the host's time issuing the step, and the N instructions that took longest on the compute
stream, grouped by op (part numbers dropped).

--against: the same program's `ffc simulate --trace` (same model, strategy, -g, -b, --math): each
instruction of the measured compute stream beside its predicted cost, matched by name, by kind and
by the predicted cost's size (what per-kernel gaps do to short kernels), the phases likewise, and
the N instructions whose measured time exceeds the prediction most. A measured compute entry lasts
from its mark to the next one: the kernels, the gaps between them, and any wait for communication
(a "finish phase" entry is that wait alone, a "phase N" entry the issue of a phase and, at once,
the wait for it: the simulator has neither on its compute lane); a predicted one is the
instruction's cost alone.
Plain Python: no numpy.
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
    ap.add_argument("--against", metavar="SIMULATED", help="ffc simulate --trace of the same program")
    args = ap.parse_args()
    other, lanes = lanes_of(args.trace, args.rank)
    events = [e for lane in lanes.values() for e in lane]
    compute, comm, host = lanes[0], lanes[1], lanes[2]
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


    if args.against:
        compare(args, compute, comm)


def lanes_of(path, rank):
    """A trace file's otherData and rank `rank`'s complete events by lane (tid); exits if it has none."""
    with open(path) as f:
        doc = json.load(f)
    lanes = collections.defaultdict(list)
    for e in doc["traceEvents"]:
        if e.get("ph") == "X" and e.get("pid") == rank:
            lanes[e.get("tid", 0)].append(e)
    if not lanes:
        sys.exit(f"{path}: no events of rank {rank}")
    return doc.get("otherData", {}), lanes


def keyed(events):
    """(name, k) -> duration of the k-th event of that name (names may repeat)."""
    seen = collections.Counter()
    out = {}
    for e in events:
        out[(e["name"], seen[e["name"]])] = e["dur"]
        seen[e["name"]] += 1
    return out


SIZES = [(0, 5, "< 5 us"), (5, 20, "5-20 us"), (20, 100, "20-100 us"), (100, 1e300, ">= 100 us")]


def compare(args, compute, comm):
    other, lanes = lanes_of(args.against, args.rank)
    print(f"against {args.against} (predicted iteration {other.get('predicted_iteration_us', 0) / 1e3:.3f} ms):")
    measured, predicted = keyed(compute), keyed(lanes[0])
    common = [k for k in measured if k in predicted]
    measured_only = [k for k in measured if k not in predicted]
    missing = [k for k in predicted if k not in measured]
    print(f"  {len(common)} instructions in both; {len(measured_only)} measured only "
          f"({sum(measured[k] for k in measured_only) / 1e3:.3f} ms: the compute lane's phase marks and waits); "
          f"{len(missing)} predicted only")
    print(f"  {'':<22} {'count':>6} {'measured ms':>12} {'predicted ms':>13} {'ratio':>7} {'gap us each':>12}")

    def row(label, keys, measured=measured, predicted=predicted):
        m = sum(measured[k] for k in keys)
        p = sum(predicted[k] for k in keys)
        ratio = f"{m / p:7.3f}" if p > 0 else "      -"
        each = (m - p) / len(keys) if keys else 0.0
        print(f"  {label:<22} {len(keys):>6} {m / 1e3:12.3f} {p / 1e3:13.3f} {ratio} {each:12.2f}")

    by_kind = collections.defaultdict(list)
    for k in common:
        by_kind[kind_of(k[0])].append(k)
    for kind, keys in sorted(by_kind.items(), key=lambda kv: -sum(measured[k] for k in kv[1])):
        row(kind, keys)
    row("all", common)
    print("  by predicted cost:")
    for lo, hi, label in SIZES:
        keys = [k for k in common if lo <= predicted[k] < hi]
        if keys:
            row(label, keys)
    mc, pc = keyed(comm), keyed(lanes[1])
    both = [k for k in mc if k in pc]
    if both:
        row("phases (comm stream)", both, mc, pc)
    worst = sorted(common, key=lambda k: predicted[k] - measured[k])[:args.top]
    print(f"  top {len(worst)} measured over predicted:")
    for k in worst:
        print(f"    {measured[k]:9.1f} us measured {predicted[k]:9.1f} predicted  {k[0]}")


if __name__ == "__main__":
    main()
