#!/usr/bin/env python3
"""Bad ONNX files: ffc must reject each with exit code 1 and a message naming the file (and the
node where there is one), never crash (issue 3).

The models are made here with onnx.helper, from a small valid conv net that must import.

Usage: check_bad_models.py --ffc PATH --dir SCRATCH_DIR
"""
import argparse
import os
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def tensor(name, *dims):
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal(dims).astype(np.float32), name)


def small_net(extra_nodes=(), opset=13, drop_initializer=None, domain=""):
    """conv -> relu -> global average pool -> flatten -> gemm, plus extra nodes on the way."""
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="/conv/Conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu", domain=domain),
    ]
    last = "r"
    for n in extra_nodes:
        nodes.append(helper.make_node(n[0], [last], [n[1]], name=n[1]))
        last = n[1]
    nodes += [
        helper.make_node("GlobalAveragePool", [last], ["p"], name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["p"], ["f"], name="/Flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["output"], name="/fc/Gemm", transB=1),
    ]
    inits = [tensor("conv.weight", 8, 3, 3, 3), tensor("conv.bias", 8), tensor("fc.weight", 10, 8), tensor("fc.bias", 10)]
    inits = [t for t in inits if t.name != drop_initializer]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [2, 10])], inits)
    imports = [helper.make_opsetid("", opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=imports, producer_name="check_bad_models")


def cases(d):
    """(name, bytes, substrings the message must hold)."""
    good = small_net().SerializeToString()
    yield "good", good, None
    yield "empty", b"", ["the file is empty"]
    yield "truncated", good[: len(good) * 2 // 3], ["corrupt or truncated"]
    yield "truncated_header", good[:7], ["corrupt or truncated"]
    yield "png_magic", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["not an ONNX model"]
    yield "ff_text", b"model tiny\ndata = input() : f32[N,4]\n", ["not an ONNX model"]
    unsupported = small_net([("Sin", "/sin/Sin"), ("NonZero", "/nz/NonZero"), ("Sin", "/sin2/Sin")])
    yield "unsupported_ops", unsupported.SerializeToString(), [
        "2 operators that ffc does not import (3 nodes)", "NonZero (1 node): /nz/NonZero",
        "Sin (2 nodes): /sin/Sin, /sin2/Sin"]
    yield "missing_initializer", small_net(drop_initializer="conv.weight").SerializeToString(), [
        "node '/conv/Conv' (Conv)", "'conv.weight'", "missing initializer"]
    yield "unknown_domain", small_net(domain="com.example").SerializeToString(), [
        "operator domains", "com.example", "/relu/Relu"]
    yield "opset_9", small_net(opset=9).SerializeToString(), ["opset 9", "11 to 17"]
    yield "opset_18", small_net(opset=18).SerializeToString(), ["opset 18", "11 to 17"]
    short = small_net()
    short.graph.initializer[0].raw_data = short.graph.initializer[0].raw_data[:100]
    yield "short_initializer", short.SerializeToString(), ["initializer 'conv.weight'", "bytes of data"]
    yield "no_such_file", None, ["cannot read the file"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ffc", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    failed = 0
    for name, data, expect in cases(args.dir):
        path = os.path.join(args.dir, f"bad_{name}.onnx")
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        elif os.path.exists(path):
            os.remove(path)
        p = subprocess.run([args.ffc, "print", path], capture_output=True, text=True)
        ok = p.returncode == 0 if expect is None else (
            p.returncode == 1 and p.stderr.startswith(path + ":") and all(e in p.stderr for e in expect))
        if not ok:
            failed += 1
            print(f"FAIL {name}: exit {p.returncode}, want {0 if expect is None else 1} with {expect}\n{p.stderr}")
        else:
            print(f"ok   {name}: {p.stderr.strip().splitlines()[0] if p.stderr.strip() else 'imports'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
