#!/usr/bin/env python3
"""bench/'s results: ffc's log-json to a result line, failures, and the markdown table.

    summarize.py table RESULTS.jsonl... [--meta META.json]       the table (markdown, on stdout)
    summarize.py ffc-result --log LOG --model M --strategy S --gpus N --batch B --math X --warmup W
                                                                  one result line from ffc's --log-json
    summarize.py failure --system S --model M ... --log LOG [--reason TEXT]
                                                                  one result line for a failed run
    summarize.py predict RESULTS.jsonl --ffc FFC --repo REPO --costs DIR [--machine M] [--strategies DIR]
                                                                  adds ffc simulate's predicted_ms to
                                                                  each ffc line (rewrites the file)

A result line (results.jsonl) is one JSON object: system (ffc|pytorch), model, strategy, gpus,
batch, math, median_s, samples_per_s; a failed run has "error" (its first error line) instead of
the timings. With measured costs (bench/run.sh --profile), an ffc line also has predicted_ms: the
simulator's iteration time for that program.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

MODEL_ORDER = ("alexnet", "resnet50", "inception_v3", "transformer")
TIE = 0.01  # measured iteration times this close (relative) rank as equal


def ffc_result(a):
    """Per-iteration times are the deltas of time_s (seconds since the loop started, cumulative)."""
    rows = []
    with open(a.log) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    need = a.warmup + 1
    if len(rows) < need:
        raise ValueError(f"the log has {len(rows)} iterations, fewer than warm-up + 1 = {need}")
    times, prev = [], 0.0
    for r in rows:
        times.append(float(r["time_s"]) - prev)
        prev = float(r["time_s"])
    timed = times[a.warmup:]
    med = statistics.median(timed)
    return {
        "system": "ffc", "model": a.model, "strategy": a.strategy, "gpus": a.gpus, "batch": a.batch,
        "math": a.math, "median_s": med, "samples_per_s": a.batch / med, "iterations": len(timed),
        "warmup": a.warmup, "mean_s": statistics.fmean(timed), "min_s": min(timed), "max_s": max(timed),
        "loss_first": rows[0].get("loss"), "loss_last": rows[-1].get("loss"),
    }


_PY_EXC = re.compile(r"^(error: )?[\w.]*(Error|Exception)\b.*")
_ERROR = re.compile(r"(?i)\berror\b|terminate called|what\(\)|segmentation fault|aborted|core dumped|"
                    r"out of memory|killed")
_RANK = re.compile(r"^(rank \d+: (?!planned memory|params )|error: )")
_NOISE = re.compile(r"^-+$|^\s*$|^\[.*\] \*\*\*|mpirun (noticed|detected)|^Primary job|^prterun")


def first_error(log):
    """The line of a log that says best what went wrong: a Python run's last exception line,
    else an uncaught C++ exception's what(), else the first "rank R: ..." or "error: ..." line (ffc's programs), else the first line that
    looks like an error, else the last line."""
    try:
        lines = [l.rstrip() for l in open(log, errors="replace")]
    except OSError:
        return "no log"
    lines = [l for l in lines if not _NOISE.search(l)]
    if any(l.startswith("Traceback") for l in lines):
        exc = [l for l in lines if _PY_EXC.match(l)]
        if exc:
            return exc[-1]
    for l in lines:   # an uncaught C++ exception: its what()
        if l.strip().startswith("what():"):
            return l.strip()[len("what():"):].strip()
    for l in lines:   # the runtime's abort ("rank 0: ...") and the driver's usage errors
        if _RANK.match(l):
            return l.strip()
    for l in lines:
        if _ERROR.search(l):
            return l.strip()
    return lines[-1].strip() if lines else "no output"


def failure(a):
    reason = a.reason or ""
    if a.log:
        err = first_error(a.log)
        reason = f"{reason}: {err}" if reason else err
    return {"system": a.system, "model": a.model, "strategy": a.strategy, "gpus": a.gpus, "batch": a.batch,
            "math": a.math, "error": reason[:300]}


def fmt_rate(r):
    if r is None:
        return "—"
    if "error" in r:
        e = r["error"].replace("|", "\\|").replace("\n", " ")
        return e if e.startswith("skipped") else "failed: " + e
    return f"{r['samples_per_s']:,.1f}"


def table(a):
    results = []
    for path in a.results:
        with open(path) as f:
            for line in f:
                if line.strip():
                    results.append(json.loads(line))
    meta = {}
    if a.meta:
        try:
            meta = json.load(open(a.meta))
        except (OSError, ValueError):
            pass
    out = []
    title = "# ffc vs PyTorch: training throughput"
    out.append(title)
    out.append("")
    for k, label in (("card", "Card"), ("gpus_visible", "GPUs on the host"), ("date", "Date"),
                     ("commit", "ffc commit"), ("torch", "PyTorch"), ("command", "Command")):
        if meta.get(k):
            out.append(f"- {label}: {meta[k]}")
    maths = sorted({r.get("math") for r in results if r.get("math")})
    its = sorted({(r.get("iterations"), r.get("warmup")) for r in results if "iterations" in r})
    batches = {}
    for r in results:
        batches.setdefault(r["model"], set()).add(r["batch"])
    if maths:
        out.append(f"- Math: {', '.join(maths)}")
    if its:
        out.append("- Timed iterations (after warm-up): " +
                   ", ".join(f"{i} (warm-up {w})" for i, w in its))
    if batches:
        out.append("- Global batch: " + ", ".join(
            f"{m} {'/'.join(str(b) for b in sorted(bs))}" for m, bs in
            sorted(batches.items(), key=lambda kv: order(kv[0]))))
    out.append("")

    # One row per ffc run (data parallel, then each strategy); PyTorch's DDP (or eager) number of
    # the same model, GPUs, batch and math beside each. PyTorch runs without an ffc row get one.
    def key(r):
        return (r["model"], r["gpus"], r["batch"], r.get("math"))
    torch_runs = {}
    for r in results:
        if r["system"] == "pytorch":
            torch_runs[key(r)] = r
    rows, seen = [], set()
    for r in results:
        if r["system"] != "ffc":
            continue
        p = torch_runs.get(key(r))
        seen.add(key(r))
        rows.append((r, p))
    for k, p in torch_runs.items():
        if k not in seen:
            rows.append((None, p))
    rows.sort(key=lambda fp: (order((fp[0] or fp[1])["model"]), (fp[0] or fp[1])["gpus"],
                              strategy_order((fp[0] or {}).get("strategy", "dp"))))

    out.append("| model | GPUs | strategy | ffc samples/s | PyTorch samples/s | ratio |")
    out.append("|---|---:|---|---:|---:|---:|")
    for f, p in rows:
        base = f or p
        strategy = f["strategy"] if f else "—"
        ratio = "—"
        if f and p and "error" not in f and "error" not in p:
            ratio = f"{f['samples_per_s'] / p['samples_per_s']:.2f}"
        pt = fmt_rate(p)
        if p and "error" not in p and p.get("strategy") not in (None, "eager", "ddp"):
            pt += f" ({p['strategy']})"
        if p and "error" not in p and p.get("attention") == "sdpa":
            pt += " (sdpa)"
        out.append(f"| {base['model']} | {base['gpus']} | {strategy} | {fmt_rate(f)} | {pt} | {ratio} |")
    out.append("")
    out.append("ratio = ffc / PyTorch samples/s (above 1: ffc is faster). Samples/s = global batch / "
               "median iteration time. PyTorch: eager on 1 GPU, DistributedDataParallel on several "
               "(the same number for every ffc strategy of that row's model and GPUs).")
    out.append("")
    out += simulator_table(results)
    return "\n".join(out) + "\n"


def simulator_table(results):
    """Predicted against measured iteration time, per ffc run that has both; and per model and GPU
    count, whether the prediction ranks the strategies as the measurements do."""
    rows = [r for r in results if r["system"] == "ffc" and "error" not in r and r.get("predicted_ms")]
    if not rows:
        return []
    rows.sort(key=lambda r: (order(r["model"]), r["gpus"], strategy_order(r["strategy"])))
    out = ["## The simulator: predicted vs measured iteration time", "",
           "| model | GPUs | strategy | measured ms | predicted ms | error |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        m, p = r["median_s"] * 1e3, r["predicted_ms"]
        out.append(f"| {r['model']} | {r['gpus']} | {r['strategy']} | {m:.2f} | {p:.2f} | {(p - m) / m * 100:+.1f} % |")
    out.append("")
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], r["gpus"]), []).append(r)
    ranked = []
    for (model, gpus), rs in sorted(groups.items(), key=lambda kv: (order(kv[0][0]), kv[0][1])):
        if len(rs) < 2:
            continue
        by_measured = [r["strategy"] for r in sorted(rs, key=lambda r: r["median_s"])]
        by_predicted = [r["strategy"] for r in sorted(rs, key=lambda r: r["predicted_ms"])]
        # Two programs measured within TIE of each other have no order to preserve: the same program
        # run twice in one call differs by up to 0.7 % (bench/RESULTS.md, session 10).
        ties, swapped = [], []
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                ma, mb = a["median_s"], b["median_s"]
                pa, pb = a["predicted_ms"], b["predicted_ms"]
                if abs(ma - mb) <= TIE * min(ma, mb):
                    ties.append(f"{a['strategy']} and {b['strategy']}")
                elif pa == pb or (ma < mb) != (pa < pb):  # predicted equal: no order predicted
                    swapped.append(f"{a['strategy']} and {b['strategy']}")
        same = "same" if not swapped else f"differs (predicted {' < '.join(by_predicted)})"
        if ties:
            same += f"; measured within {TIE * 100:.0f} %, a tie: {', '.join(ties)}"
        ranked.append(f"- {model} on {gpus} GPUs: measured {' < '.join(by_measured)}: ranking {same}")
    errs = [abs(r["predicted_ms"] - r["median_s"] * 1e3) / (r["median_s"] * 1e3) for r in rows]
    out.append(f"Error = (predicted − measured) / measured; {sum(e <= 0.1 for e in errs)} of {len(rows)} rows "
               f"within 10 %, worst {max(errs) * 100:.1f} %.")
    if ranked:
        out += ["", "Ranking of the strategies by iteration time:"] + ranked
    return out + [""]


def predict(a):
    """ffc simulate for every ffc line: the same model, GPUs, batch, strategy and math, with the
    cost tables measured for that model and GPU count (COSTS/<model>_g<N>.costs). With --traces:
    where TRACES/<model>_g<N>_<strategy>.trace.json (the program's --trace) exists, the simulated
    trace beside it (.sim.json) and trace_summary.py's comparison of the two (.against.txt)."""
    results = [json.loads(l) for l in open(a.results) if l.strip()]
    for r in results:
        if r["system"] != "ffc" or "error" in r:
            continue
        costs = os.path.join(a.costs, f"{r['model']}_g{r['gpus']}.costs")
        if not os.path.exists(costs):
            continue
        cmd = [a.ffc, "simulate", os.path.join(a.repo, "examples", r["model"] + ".ff"), "-g", str(r["gpus"]),
               "-b", str(r["batch"]), "--math", r.get("math", "tf32"), "--optimizer", "sgd", "--costs", costs]
        if a.machine:
            cmd += ["--machine", a.machine]
        if r["strategy"] != "dp":
            name = f"{r['model']}_{r['strategy']}.pbtxt"
            found = os.path.join(a.strategies, name) if a.strategies else None
            cmd += ["-s", found if found and os.path.exists(found) else os.path.join(a.repo, "strategies", name)]
        stem = os.path.join(a.traces, f"{r['model']}_g{r['gpus']}_{r['strategy']}") if a.traces else None
        traced = stem is not None and os.path.exists(stem + ".trace.json")
        if traced:
            cmd += ["--trace", stem + ".sim.json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if traced and p.returncode == 0:
            with open(stem + ".against.txt", "w") as out:
                subprocess.run([sys.executable, os.path.join(a.repo, "bench", "trace_summary.py"), stem + ".trace.json",
                                "--against", stem + ".sim.json"], stdout=out, stderr=subprocess.STDOUT)
        m = re.search(r"predicted iteration time: ([0-9.]+) ms", p.stdout)
        k = re.search(r"(\d+) of (\d+) kernels measured", p.stdout)
        if m:
            r["predicted_ms"] = float(m.group(1))
            if k:
                r["kernels_measured"] = [int(k.group(1)), int(k.group(2))]
        else:
            r["predict_error"] = (p.stderr.strip().splitlines() or ["no output"])[-1]
    with open(a.results, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")


def order(model):
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)


def strategy_order(s):
    return (0, s) if s == "dp" else (1, s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table", help="print the markdown table of result files")
    t.add_argument("results", nargs="+")
    t.add_argument("--meta", help="meta.json: card, date, commit, ...")
    pr = sub.add_parser("predict", help="add ffc simulate's predicted_ms to the ffc lines of a result file")
    pr.add_argument("results")
    pr.add_argument("--ffc", required=True)
    pr.add_argument("--repo", required=True, help="the ffc source tree: examples/ and strategies/")
    pr.add_argument("--costs", required=True, help="a directory of <model>_g<N>.costs tables")
    pr.add_argument("--machine", help="ffc simulate --machine (a preset or a machine file)")
    pr.add_argument("--strategies", help="a directory of strategy files to look in before REPO/strategies "
                    "(bench/run.sh --search writes the strategies it found there)")
    pr.add_argument("--traces", help="a directory of the programs' --trace files: compare each with ffc simulate's")
    for name in ("ffc-result", "failure"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--strategy", default="dp")
        p.add_argument("--gpus", type=int, required=True)
        p.add_argument("--batch", type=int, required=True)
        p.add_argument("--math", default="tf32")
        p.add_argument("--log", required=name == "ffc-result")
        if name == "ffc-result":
            p.add_argument("--warmup", type=int, default=0)
        else:
            p.add_argument("--system", required=True, choices=("ffc", "pytorch"))
            p.add_argument("--reason", help="what failed (compile, build, run, timed out after 300 s)")
    a = ap.parse_args()
    if a.cmd == "table":
        sys.stdout.write(table(a))
    elif a.cmd == "predict":
        predict(a)
    elif a.cmd == "ffc-result":
        print(json.dumps(ffc_result(a)))
    else:
        print(json.dumps(failure(a)))


if __name__ == "__main__":
    main()
