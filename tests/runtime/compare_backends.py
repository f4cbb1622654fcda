#!/usr/bin/python3
"""Compares two backends' backend_cases outputs (safetensors files), tensor by tensor.

    compare_backends.py REFERENCE OTHER [--tolerance T] [--top N]

A tensor's error is max |other - ref| / max |ref| (NaN where only one side is NaN counts as
infinite; an all-zero reference needs an exact match). Prints the worst tensors, then every tensor
over the tolerance, missing from OTHER or of another dtype or shape, and every case whose inputs
differ (the files' per-case input hashes), and exits 1 if there is any. Tensors only OTHER has are
listed but pass. Reads the files by hand (8-byte little-endian header
length, JSON header, data), so only numpy is needed.
"""

import argparse
import json
import struct
import sys

import array
import math

# safetensors dtype -> (array typecode, bytes per element). Plain Python: the GPU host's python3
# may lack numpy.
DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8)}


class Tensor:
    def __init__(self, dtype, shape, values):
        self.dtype, self.shape, self.values = dtype, shape, values

    @property
    def size(self):
        return len(self.values)


def read_safetensors(path):
    """Returns ({name: Tensor}, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        sys.exit(f"{path}: the header runs past the end of the file")
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            sys.exit(f"{path}: {name} has dtype {e['dtype']} (F32, F64 and I64 are read)")
        begin, end = e["data_offsets"]
        code, itemsize = DTYPES[e["dtype"]]
        shape = tuple(e["shape"])
        if end - begin != math.prod(shape) * itemsize or end > len(body):
            sys.exit(f"{path}: {name}'s data does not match its shape and dtype")
        values = array.array(code)
        values.frombytes(bytes(body[begin:end]))
        if sys.byteorder != "little":
            values.byteswap()
        tensors[name] = Tensor(e["dtype"], shape, values)
    return tensors, metadata


def unravel(index, shape):
    out = []
    for extent in reversed(shape):
        out.append(index % extent if extent else 0)
        index = index // extent if extent else 0
    return tuple(reversed(out))


def compare(ref, other):
    """(error, max |diff|, max |ref|, index of the worst element, its two values) of two equally
    shaped tensors."""
    if ref.size == 0:
        return 0.0, 0.0, 0.0, None, None
    max_diff, worst, max_ref = 0.0, 0, 0.0
    for i, (r, o) in enumerate(zip(ref.values, other.values)):
        r, o = float(r), float(o)
        if math.isnan(r) and math.isnan(o):
            d = 0.0
        else:
            d = abs(o - r)
            if math.isnan(d):
                d = math.inf  # NaN on one side only
        if d > max_diff:
            max_diff, worst = d, i
        if math.isfinite(r):
            max_ref = max(max_ref, abs(r))
    if max_diff == 0.0:
        error = 0.0
    elif max_ref == 0.0 or not math.isfinite(max_diff):
        error = math.inf
    else:
        error = max_diff / max_ref
    return error, max_diff, max_ref, unravel(worst, ref.shape), (ref.values[worst], other.values[worst])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", help="the reference backend's file (cpu)")
    p.add_argument("other", help="the backend under test's file (cuda)")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest allowed max|diff| / max|ref| per tensor (default 1e-5)")
    p.add_argument("--top", type=int, default=20, help="rows of the table of the worst tensors (default 20)")
    args = p.parse_args()

    ref, ref_meta = read_safetensors(args.reference)
    other, other_meta = read_safetensors(args.other)
    print(f"reference: {args.reference} ({ref_meta.get('backend', '?')}, tf32={ref_meta.get('tf32', '?')}, "
          f"{len(ref)} tensors)")
    print(f"other:     {args.other} ({other_meta.get('backend', '?')}, tf32={other_meta.get('tf32', '?')}, "
          f"{len(other)} tensors)")

    rows, failures = [], []
    # backend_cases hashes each case's uploaded inputs: differing hashes mean the two programs drew
    # different inputs (built from different sources), and their outputs cannot be compared.
    for key in sorted(ref_meta):
        if key.startswith("inputs/") and key in other_meta and ref_meta[key] != other_meta[key]:
            failures.append(f"{key[len('inputs/'):]}/*: the two runs uploaded different inputs")
    for name in sorted(ref):
        a = ref[name]
        if name not in other:
            failures.append(f"{name}: missing")
            continue
        b = other[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            failures.append(f"{name}: {b.dtype}{list(b.shape)}, expected {a.dtype}{list(a.shape)}")
            continue
        error, max_diff, max_ref, at, values = compare(a, b)
        rows.append((error, name, max_diff, max_ref, at, values))
        if not error <= args.tolerance:
            failures.append(f"{name}: error {error:.3g} > {args.tolerance:g}")

    rows.sort(key=lambda row: (-row[0], row[1]))
    print(f"\n{'error':>10} {'max|diff|':>10} {'max|ref|':>10}  {'tensor':<56} worst element (ref / other)")
    for error, name, max_diff, max_ref, at, values in rows[: args.top]:
        where = "" if at is None else f"{list(at)}: {values[0]:.9g} / {values[1]:.9g}"
        print(f"{error:10.3g} {max_diff:10.3g} {max_ref:10.3g}  {name:<56} {where}")
    extra = sorted(set(other) - set(ref))
    if extra:
        more = " ..." if len(extra) > 10 else ""
        print(f"\n{len(extra)} tensors only in {args.other}: {', '.join(extra[:10])}{more}")

    cases = {name.rsplit("/", 1)[0] for name in ref}
    if failures:
        bad = sorted({f.split(":", 1)[0].rsplit("/", 1)[0] for f in failures})
        print(f"\nFAILED: {len(failures)} of {len(ref)} tensors, {len(bad)} of {len(cases)} cases "
              f"(tolerance {args.tolerance:g}):")
        for f in failures:
            print(f"  {f}")
        return 1
    print(f"\nOK: {len(ref)} tensors of {len(cases)} cases within {args.tolerance:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
