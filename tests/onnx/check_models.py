#!/usr/bin/env python3
"""Checks ffc's import of models written by export_models.py (issue 3).

For each MODEL, with DIR/MODEL.onnx and its sidecar DIR/MODEL.json:
  1. `ffc print MODEL.onnx` exits 0 (the pipeline runs the IR verifier);
  2. its output, saved as a .ff file, prints back byte for byte (`ffc print MODEL.ff`);
  3. the parameters named in the printed IR (params(...)) are exactly the PyTorch model's
     parameters and buffers, without num_batches_tracked, under their PyTorch names;
  4. `ffc strategy MODEL.onnx -g 4` (data parallel on 4 devices) validates.

Usage: check_models.py --ffc PATH --dir DIR MODEL...
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

PARAMS = re.compile(r' params\((.*)\)(?:  #.*)?$')
NAME = r'(?:[A-Za-z_][A-Za-z0-9_./-]*|"(?:[^"\\]|\\.)*")'
ENTRY = re.compile(r'(\w+)=(' + NAME + r')')


def unquote(name):
    if name.startswith('"'):
        return re.sub(r'\\(.)', r'\1', name[1:-1])
    return name


def param_names(ir):
    names = []
    for line in ir.splitlines():
        m = PARAMS.search(line)
        if m:
            names += [unquote(e.group(2)) for e in ENTRY.finditer(m.group(1))]
    return names


def run(cmd):
    start = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p, time.monotonic() - start


def check(ffc, d, model):
    onnx_path = os.path.join(d, model + ".onnx")
    with open(os.path.join(d, model + ".json")) as f:
        want = json.load(f)
    problems = []
    p, t_print = run([ffc, "print", onnx_path])
    if p.returncode != 0:
        return [f"ffc print {onnx_path} exited {p.returncode}:\n{p.stderr}"], {}
    ir = p.stdout
    ff_path = os.path.join(d, model + ".imported.ff")
    with open(ff_path, "w") as f:
        f.write(ir)
    q, t_reprint = run([ffc, "print", ff_path])
    if q.returncode != 0:
        problems.append(f"the printed IR does not parse back ({ff_path}):\n{q.stderr}")
    elif q.stdout != ir:
        lines = [(i + 1, a, b) for i, (a, b) in enumerate(zip(ir.splitlines(), q.stdout.splitlines())) if a != b]
        problems.append(f"the printed IR does not print back the same ({ff_path}); first difference: {lines[:1]}")
    names = param_names(ir)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"parameters named twice: {dupes[:5]}")
    expected = set(want["params"])
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    if missing or extra or len(names) != want["param_count"]:
        problems.append(f"{len(names)} parameters, PyTorch has {want['param_count']}; "
                        f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                        f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}")
    s, t_strategy = run([ffc, "strategy", onnx_path, "-g", "4"])
    if s.returncode != 0:
        problems.append(f"ffc strategy {onnx_path} -g 4 exited {s.returncode}:\n{s.stderr}")
    ops = sum(1 for line in ir.splitlines() if " = " in line and not line.startswith("#"))
    return problems, {"ops": ops, "params": len(names), "print_s": t_print, "reprint_s": t_reprint,
                      "strategy_s": t_strategy}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ffc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    failed = 0
    for model in args.models:
        problems, stats = check(args.ffc, args.dir, model)
        if problems:
            failed += 1
            print(f"FAIL {model}")
            for p in problems:
                print("  " + p.replace("\n", "\n  "))
        else:
            print(f"ok   {model}: {stats['ops']} ops, {stats['params']} parameters; print {stats['print_s']:.2f} s, "
                  f"print of the .ff {stats['reprint_s']:.2f} s, strategy {stats['strategy_s']:.2f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
