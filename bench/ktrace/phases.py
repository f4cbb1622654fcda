#!/usr/bin/env python3
"""Where a multi-rank step's communication goes: each NCCL kernel of rank 0's replayed graphs.

usage: phases.py PREFIX RANKS [--against SIMULATED.json] [--top N]

PREFIX.<r>.csv (or .csv.gz) are ktrace records of one program's ranks 0 .. RANKS-1
(bench/ktrace/README.md). For each NCCL kernel of rank 0's replayed graphs, in order, the medians
over the last replays of: its duration; the gap before it (from the latest end of any earlier
kernel of the replay: packing, waits on the other stream, and memsets, which CUPTI does not
record as kernels); and how long rank 0 waited in it for the last rank to start its own kernel of
the same place (ranks' clocks are set beside each other by the median over the kernels other than
SendRecv of the difference of their ends). Which ranks take part in a kernel the records do not
say: without --against every rank counts, an upper bound where a kernel spans fewer. --against:
rank 0's phases of the same program's `ffc simulate --trace`, beside the kernels in order (a phase
whose collectives span several communicators runs a kernel each, so the alignment can slip by one
there), and the ranks of each phase are the members the wait counts (a phase's: it may hold
several groups' collectives and transfers between other ranks, so still an upper bound). Then the totals, and the N kernels whose duration and gap
exceed their phase's prediction most. Ranks whose replays hold other NCCL kernels than rank 0's
are reported.
Plain Python: no numpy.
"""
import argparse
import collections
import json
import os
import signal
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summary  # noqa: E402  (ktrace's reader: load, graphs)


def load(prefix, rank):
    for path in (f"{prefix}.{rank}.csv", f"{prefix}.{rank}.csv.gz"):
        if os.path.exists(path):
            return summary.load(path)
    sys.exit(f"phases.py: no {prefix}.{rank}.csv or {prefix}.{rank}.csv.gz")


def kind(name):
    """ncclDevKernel_AllReduce_Sum_f32_RING_LL(...) -> AllReduce."""
    base = name.split("(")[0]
    for k in ("SendRecv", "AllReduce", "AllGather", "ReduceScatter", "Broadcast", "Reduce"):
        if k in base:
            return k
    return base[:24]


def nccl_of(replay):
    return [r for r in sorted(replay, key=lambda r: r["start"]) if "nccl" in r["name"].lower()]


def measure(prefix, ranks, members=None):
    """One row per NCCL kernel of rank 0; `members[k]`: the ranks whose starts the k-th waits for."""
    per_rank = [summary.graphs(load(prefix, r)) for r in range(ranks)]
    for r in range(1, ranks):
        for g, reps in per_rank[0].items():
            other = per_rank[r].get(g)
            mine = [kind(x["name"]) for x in nccl_of(reps[-1])]
            if not other or [kind(x["name"]) for x in nccl_of(other[-1])] != mine:
                print(f"phases.py: rank {r}'s graph {g} holds other NCCL kernels than rank 0's: waits there are "
                      "not comparable", file=sys.stderr)
    # Durations and gaps: summary.py's, rank 0's NCCL kernels; waits by each kernel's place.
    rows = [dict(graph=x[3], kind=kind(x[0]), grid=x[5], dur=x[1], gap=x[2], wait=0.0)
            for x in summary.profile_graphs(per_rank[0]) if "nccl" in x[0].lower()]
    at = 0
    for g in sorted(per_rank[0], key=lambda g: per_rank[0][g][0][0]["start"]):
        reps = per_rank[0][g]
        n = len(nccl_of(reps[0]))
        waits = collections.defaultdict(list)
        for i in range(-len(reps), 0):
            kernels = nccl_of(reps[i])
            theirs = []
            for r in range(1, ranks):
                other = per_rank[r].get(g)
                theirs.append(nccl_of(other[i]) if other and len(other) >= -i else [])
            # clock offsets: the median over the collectives (not SendRecv) of end_r - end_0
            offsets = []
            for t in theirs:
                d = [t[j]["end"] - kernels[j]["end"] for j in range(min(len(t), n)) if kind(kernels[j]["name"]) != "SendRecv"]
                offsets.append(statistics.median(d) if d else 0.0)
            for k, rec in enumerate(kernels):
                who = members[at + k] if members and at + k < len(members) else None
                starts = [t[k]["start"] - off for r, (t, off) in enumerate(zip(theirs, offsets), start=1)
                          if len(t) > k and (who is None or r in who)]
                waits[k].append(max(0.0, (max(starts, default=rec["start"]) - rec["start"]) / 1e3))
        for k in range(n):
            rows[at + k]["wait"] = statistics.median(waits[k])
        at += n
    return rows


def simulated(path):
    """Rank 0's phases in order, and each one's member ranks (the ranks with an event of its name)."""
    t = json.load(open(path))
    comm = [e for e in t["traceEvents"] if e.get("ph") == "X" and e.get("tid") == 1]
    ranks_of = collections.defaultdict(set)
    for e in comm:
        ranks_of[e["name"]].add(e["pid"])
    mine = [e for e in comm if e.get("pid") == 0]
    return mine, [ranks_of[e["name"]] for e in mine]


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("prefix")
    ap.add_argument("ranks", type=int)
    ap.add_argument("--against")
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args()
    if a.ranks < 1:
        sys.exit("phases.py: RANKS must be at least 1")
    sim, members = simulated(a.against) if a.against else ([], None)
    rows = measure(a.prefix, a.ranks, members)
    print(f"{'#':>3} {'kernel':<13} {'grid':>4} {'us':>7} {'gap':>6} {'wait':>6}" +
          (f" {'predicted':>9}  phase" if sim else ""))
    for i, r in enumerate(rows):
        line = f"{i:3d} {r['kind']:<13} {r['grid']:4d} {r['dur']:7.1f} {r['gap']:6.1f} {r['wait']:6.1f}"
        if i < len(sim):
            line += f" {sim[i]['dur']:9.1f}  {sim[i]['name'][:70]}"
        print(line)
    tot = lambda key: sum(r[key] for r in rows)
    print(f"rank 0, a step: {len(rows)} NCCL kernels, {tot('dur'):.0f} us in them (of which {tot('wait'):.0f} waiting "
          f"for the last {'member' if sim else 'rank'}, at most), {tot('gap'):.0f} us of gaps before them")
    if sim:
        print(f"predicted: {len(sim)} phases, {sum(e['dur'] for e in sim):.0f} us")
        worst = sorted(((r["dur"] + r["gap"] - sim[i]["dur"], i) for i, r in enumerate(rows) if i < len(sim)), reverse=True)
        print("most over their prediction (duration + gap - predicted):")
        for d, i in worst[:a.top]:
            print(f"  #{i:<3} {d:+7.1f} us  {rows[i]['kind']:<13} {sim[i]['name'][:70]}")


if __name__ == "__main__":
    main()
