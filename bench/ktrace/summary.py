"""ktrace CSVs (bench/ktrace/README.md): per replayed graph, kernels' median durations and gaps.

usage: summary.py --brief CSV...            each file: kernels, their durations and gaps, median gap
       summary.py BASE.csv OTHER.csv...     each OTHER against BASE, kernel by kernel (NCCL's aside)

A graph's replays are told apart where its first node recurs; graphs replayed 5 times or more
count, each kernel by its median over the last 10 replays; a kernel's gap runs from the latest end
of the earlier kernels of its replay.
"""
import collections
import gzip
import statistics
import sys


def load(path):
    """The kernel records of a ktrace CSV (gzip-compressed where the name ends in .gz), by start."""
    recs = []
    with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
        lines = f.readlines()
    for line in lines:
        f = line.rstrip("\n").split(",", 9)
        if f[0] != "K":
            continue
        recs.append(dict(start=int(f[1]), end=int(f[2]), stream=int(f[4]), node=int(f[5]), graph=int(f[6]),
                         grid=int(f[7]), name=f[9]))
    recs.sort(key=lambda r: r["start"])
    return recs


def graphs(recs):
    """{graph id: [replay: [records in start order]]}, replays split where a graph's first node recurs."""
    by = collections.defaultdict(list)
    for r in recs:
        if r["graph"]:
            by[r["graph"]].append(r)
    out = {}
    for g, rs in by.items():
        first = rs[0]["node"]
        reps, cur = [], []
        for r in rs:
            if r["node"] == first and cur:
                reps.append(cur)
                cur = []
            cur.append(r)
        reps.append(cur)
        n = collections.Counter(len(x) for x in reps).most_common(1)[0][0]
        reps = [x for x in reps if len(x) == n]
        if len(reps) >= 5:
            out[g] = reps[-10:]
    return out


def profile(path):
    """[(name, median duration us, median gap us before it, graph, stream, grid)] over every replayed
    graph, by first start."""
    return profile_graphs(graphs(load(path)))


def profile_graphs(gs):
    """profile() of graphs() already read."""
    seq = []
    for g, reps in sorted(gs.items(), key=lambda kv: kv[1][0][0]["start"]):
        n = len(reps[0])
        for i in range(n):
            durs = [(x[i]["end"] - x[i]["start"]) / 1e3 for x in reps]
            # the gap: from the latest end among earlier kernels of the replay on any stream
            gaps = []
            for x in reps:
                prev = max((y["end"] for y in x[:i]), default=None)
                gaps.append(max(0.0, (x[i]["start"] - prev) / 1e3) if prev is not None else 0.0)
            seq.append((reps[0][i]["name"], statistics.median(durs), statistics.median(gaps), g,
                        reps[0][i]["stream"], reps[0][i]["grid"]))
    return seq


def brief(paths):
    for p in paths:
        seq = [x for x in profile(p) if "nccl" not in x[0].lower()]
        gaps = sorted(x[2] for x in seq)
        med = gaps[len(gaps) // 2] if gaps else float("nan")
        print(f"{p}: {len(seq)} kernels, durations {sum(x[1] for x in seq):.1f} us, gaps {sum(gaps):.1f} us, "
              f"median gap {med:.2f} us")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    if sys.argv[1] == "--brief":
        brief(sys.argv[2:])
        return
    base = profile(sys.argv[1])
    for other_path in sys.argv[2:]:
        other = profile(other_path)
        nccl = [x for x in other if "nccl" in x[0].lower()]
        a = [x for x in base if "nccl" not in x[0].lower()]
        b = [x for x in other if "nccl" not in x[0].lower()]
        print(f"== {sys.argv[1]} ({len(a)} kernels) vs {other_path} ({len(b)} kernels, {len(nccl)} nccl)")
        print(f"   sum durations {sum(x[1] for x in a):9.1f} vs {sum(x[1] for x in b):9.1f} us")
        print(f"   sum gaps      {sum(x[2] for x in a):9.1f} vs {sum(x[2] for x in b):9.1f} us")
        print(f"   nccl kernels  {sum(x[1] for x in nccl):9.1f} us: " +
              ", ".join(f"{x[1]:.1f}" for x in nccl))
        if len(a) == len(b):
            diffs = sorted(((y[1] - x[1], y[2] - x[2], i, x[0]) for i, (x, y) in enumerate(zip(a, b))),
                           key=lambda d: -abs(d[0]) - abs(d[1]))
            for d in diffs[:15]:
                print(f"   #{d[2]:4d} dur {d[0]:+6.2f} gap {d[1]:+6.2f}  {a[d[2]][1]:7.2f} us  {d[3][:60]}")
            # running difference along the sequence, every 25 kernels
            cd = cg = 0.0
            line = []
            for i, (x, y) in enumerate(zip(a, b)):
                cd += y[1] - x[1]
                cg += y[2] - x[2]
                if i % 25 == 24:
                    line.append(f"{i + 1}:{cd:+.0f}/{cg:+.0f}")
            print("   cumulative dur/gap diff: " + " ".join(line))
        else:
            print("   (sequences differ in length; no per-kernel alignment)")


if __name__ == "__main__":
    main()
