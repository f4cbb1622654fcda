#!/usr/bin/env python3
"""Writes small versions of the example models for the equivalence tests.

Same ops, same structure, the same dims to split: only the input's spatial size and the layer
widths shrink (widths of 64 and more are divided by WIDTH_DIV), so a model verifies in about a
second and hundreds of random strategies fit in CI. Types are left out (ffc infers them) except on
inputs; `ffc print` then writes the model back with every type.

    tests/equivalence/shrink.py build/tools/ffc/ffc
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WIDTH_DIV = 8

# model: (input type, {op name: replacement attributes}, the last op kept or None)
# Inception-v3 keeps its stem and modules 5b..6b (every kind of branch: 1x1, 5x5, double 3x3, pools,
# the 6a reduction, 1x7 and 7x1), then pools and classifies: through all 11 modules, float32's own
# gradients are too inaccurate to compare (README.md).
MODELS = {
    "alexnet": ("f32[N,3,67,67]", {}, None),
    "resnet50": ("f32[N,3,32,32]", {"avgpool": "kernel=[1,1], stride=[1,1]"}, None),
    "inception_v3": ("f32[N,3,75,75]", {}, "mixed_6b_concat"),
}


def shrink_widths(line):
    def div(m):
        v = int(m.group(2))
        return f"{m.group(1)}={v // WIDTH_DIV if v >= 64 else v}"
    return re.sub(r"(out_channels|out_features)=(\d+)", div, line)


def ffc_print(ffc, path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([ffc, "print", path], capture_output=True, text=True)
    os.remove(path)
    if r.returncode:
        sys.exit(r.stderr)
    return r.stdout


def shrink(name, ffc):
    in_type, attrs, last = MODELS[name]
    what = f"its ops up to {last}, then a pool and a classifier" if last else "the same ops and structure"
    out = [f"# Generated from examples/{name}.ff by tests/equivalence/shrink.py: {what},",
           f"# the input {in_type}, layer widths of 64 and more divided by {WIDTH_DIV}. Do not edit."]
    for line in open(os.path.join(ROOT, "examples", f"{name}.ff")):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        if line.startswith("model "):
            out.append(f"model {name}_small")
            continue
        m = re.match(r"(\w+) = (\w+)\((.*)\) : [^#]*?(?:\s+(params\(.*\)))?(\s*#.*)?$", line)
        if not m:
            sys.exit(f"cannot read: {line}")
        op, kind, args = m.group(1), m.group(2), m.group(3)
        if kind == "input":
            out.append(f"{op} = input() : {in_type if 'f32' in line else line.split(' : ')[1]}")
            continue
        if op in attrs:
            args = re.sub(r"kernel=\[[^\]]*\], stride=\[[^\]]*\]", attrs[op], args)
        out.append(shrink_widths(f"{op} = {kind}({args})"))
        if op == last:
            break
    path = os.path.join(HERE, "models", f"{name}_small.ff")
    tmp = path[:-3] + ".tmp.ff"
    if last:  # a global average pool over the last op's map, and a classifier of 10 classes
        typed = ffc_print(ffc, tmp, out)
        dims = re.search(rf"^{last} = .* : f32\[N,(\d+),(\d+),(\d+)\]", typed, re.M).groups()
        out += [f"avgpool = pool2d({last}, type=avg, kernel=[{dims[1]},{dims[2]}], stride=[{dims[1]},{dims[2]}])",
                "flat = flat(avgpool)", "fc = linear(flat, out_features=10)"]
    text = ffc_print(ffc, tmp, out)
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    for name in MODELS:
        shrink(name, sys.argv[1])
