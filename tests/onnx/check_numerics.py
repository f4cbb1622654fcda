#!/usr/bin/env python3
"""Checks that an imported model computes what the PyTorch model computes: the loss of one training
step of `ffc run MODEL.onnx`, started from the PyTorch weights (a safetensors file under the PyTorch
names, which the importer keeps), equals PyTorch's cross-entropy loss on the same batch.

The model is rebuilt as export_models.py builds it (same seed); its biases and normalization
parameters are perturbed so that they matter. Exit 77 (skipped) when `ffc run` is not built.

Usage: check_numerics.py --ffc PATH --dir DIR MODEL...   (DIR holds MODEL.onnx from export_models.py)
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models  # noqa: E402

SKIP = 77


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def check(ffc, d, name):
    make, _opset, *_ = export_models.MODELS[name]
    torch.manual_seed(0)
    model, shape = make()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    with torch.no_grad():
        for key, v in model.state_dict().items():
            if v.dtype == torch.float32 and v.dim() == 1:
                v.add_(torch.rand_like(v) * 0.1)
    lm = isinstance(model, export_models.TinyLM)
    x = torch.randint(0, 100, shape) if lm else torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = model(x)
    classes = out.shape[-1]
    labels = torch.randint(0, classes, out.shape[:-1])
    want = torch.nn.functional.cross_entropy(out.reshape(-1, classes), labels.reshape(-1)).item()

    work = os.path.join(d, name + ".numerics")
    os.makedirs(work, exist_ok=True)
    np.save(os.path.join(work, "inputs.npy"), x.numpy())
    np.save(os.path.join(work, "labels.npy"), labels.numpy())
    weights = os.path.join(work, "weights.safetensors")
    write_safetensors(weights, {k: v.detach().numpy() for k, v in model.state_dict().items()
                                if not k.endswith("num_batches_tracked")})
    p = subprocess.run([ffc, "run", os.path.join(d, name + ".onnx"), "-d", work, "-b", str(shape[0]), "--steps", "1",
                        "--lr", "0", "--load", weights, "--threads", "1"], capture_output=True, text=True)
    if p.returncode == 2:
        return None, "ffc run is not built"
    if p.returncode != 0:
        return False, f"ffc run exited {p.returncode}:\n{p.stderr}"
    got = [float(line.split()[3]) for line in p.stdout.splitlines() if line.startswith("step 1 loss")]
    if not got:
        return False, f"no loss in the output of ffc run:\n{p.stdout}"
    ok = abs(got[0] - want) <= 1e-4 * max(1.0, abs(want))
    return ok, f"loss {got[0]:.6f}, PyTorch {want:.6f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ffc", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    failed = skipped = 0
    for name in args.models:
        ok, msg = check(args.ffc, args.dir, name)
        print(f"{'skip' if ok is None else 'ok  ' if ok else 'FAIL'} {name}: {msg}")
        failed += ok is False
        skipped += ok is None
    return 1 if failed else SKIP if skipped == len(args.models) else 0


if __name__ == "__main__":
    sys.exit(main())
