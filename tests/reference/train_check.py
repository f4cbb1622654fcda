#!/usr/bin/env python3
"""Trains whole models with `ffc run` and with PyTorch from the same weights and data, and
compares every step's loss and the final weights (and running statistics).

usage: train_check.py FFC WORKDIR MODEL.ff[@CONFIG] ...
Each model is trained for a few steps with optimizer config CONFIG (an index into CONFIGS; by
default the models cycle through them); exit 1 on a mismatch.
"""
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ff_torch  # noqa: E402

STEPS, BATCH, SAMPLES = 4, 6, 15  # 15 samples: the data set wraps during the run

CONFIGS = [  # (flags, torch optimizer factory), cycled over the models
    (["--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--nesterov", "--wd", "0.001"],
     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)),
    (["--optimizer", "adam", "--lr", "0.002"], lambda ps: torch.optim.Adam(ps, lr=0.002)),
    (["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.5"], lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5)),
    (["--optimizer", "adamw", "--lr", "0.003", "--wd", "0.01"],
     lambda ps: torch.optim.AdamW(ps, lr=0.003, weight_decay=0.01)),
    # For deep nets whose loss would jump under the rates above: past such a jump, float32
    # rounding differences grow with every step in any two implementations.
    (["--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9"], lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9)),
]


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype=np.float32).reshape(e["shape"])
    return out


def input_spec(ops):
    data = [op for op in ops if op.kind == "input"][0]
    t = data.type_text
    dims = [int(d) for d in t[t.index("[") + 1:t.rindex("]")].split(",")[1:]]
    return data.name, t.startswith("i64"), dims


def check(ffc, work, model, config_index):
    rng = np.random.default_rng(7 + config_index)
    torch.manual_seed(config_index)
    name = os.path.splitext(os.path.basename(model))[0]
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    ops = ff_torch.parse(model)
    shapes = ff_torch.param_shapes(ops)
    init = {}
    for n, s in shapes.items():
        if n.endswith("running_var"):
            init[n] = np.ones(s, np.float32)
        elif n.endswith("running_mean"):
            init[n] = np.zeros(s, np.float32)
        else:
            init[n] = (rng.standard_normal(s) * (0.5 / np.sqrt(max(1, np.prod(s[1:]) if len(s) > 1 else 1)))).astype(
                np.float32) + (1.0 if n.endswith(".weight") and len(s) == 1 else 0.0)
    write_safetensors(os.path.join(d, "init.safetensors"), init)

    in_name, is_ids, dims = input_spec(ops)
    vocab = next((op.attrs["num_embeddings"] for op in ops if op.kind == "embedding"), None)
    if is_ids:
        inputs = rng.integers(0, vocab, size=(SAMPLES, *dims)).astype(np.int64)
        labels = rng.integers(0, vocab, size=(SAMPLES, *dims)).astype(np.int64)
    else:
        inputs = rng.standard_normal((SAMPLES, *dims)).astype(np.float32)
        labels = rng.integers(0, 10, size=(SAMPLES,)).astype(np.int64)
    np.save(os.path.join(d, "inputs.npy"), inputs)
    np.save(os.path.join(d, "labels.npy"), labels)

    flags, make_opt = CONFIGS[config_index % len(CONFIGS)]
    cmd = [ffc, "run", model, "-d", d, "-b", str(BATCH), "--steps", str(STEPS), "--load",
           os.path.join(d, "init.safetensors"), "--save", os.path.join(d, "final.safetensors"), "--threads", "2"] + flags
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return [f"ffc run failed: {proc.stderr.strip()}"]
    ffc_losses = [float(m) for m in re.findall(r"^step \d+ loss (\S+)", proc.stdout, re.M)]

    params = {n: torch.tensor(v, requires_grad=not n.endswith(("running_mean", "running_var"))) for n, v in init.items()}
    opt = make_opt([p for n, p in sorted(params.items()) if p.requires_grad])
    torch_losses = []
    for k in range(STEPS):
        idx = [(k * BATCH + i) % SAMPLES for i in range(BATCH)]
        x = torch.tensor(inputs[idx])
        y = torch.tensor(labels[idx])
        opt.zero_grad()
        values = ff_torch.forward(ops, params, {in_name: x})
        loss = ff_torch.training_loss(ops, values, y)
        loss.backward()
        opt.step()
        torch_losses.append(loss.item())

    problems = []
    if len(ffc_losses) != STEPS:
        return [f"expected {STEPS} losses, ffc printed: {proc.stdout}"]
    for k, (a, b) in enumerate(zip(ffc_losses, torch_losses)):
        if abs(a - b) > 1e-4 * max(1.0, abs(b)):
            problems.append(f"step {k + 1}: loss {a} vs PyTorch {b}")
    final = read_safetensors(os.path.join(d, "final.safetensors"))
    for n, p in params.items():
        want = p.detach().numpy()
        got = final.get(n)
        if got is None:
            problems.append(f"{n}: missing from ffc's checkpoint")
            continue
        scale = max(1e-3, float(np.abs(want).max()))
        err = np.abs(got - want)
        bad = err > 1e-4 * scale
        # Adam divides each gradient by its own running magnitude, so an element whose gradient is
        # rounding noise (~1e-10, e.g. a unit that barely fired) moves by a full step in a direction
        # the noise picks, in float32 PyTorch as much as in ffc. Allow a few such elements, each off
        # by at most the steps it could have taken.
        if "adam" in " ".join(flags):
            lr = float(flags[flags.index("--lr") + 1])
            if bad.sum() <= max(1, 1e-3 * err.size) and float(err.max()) <= 2 * lr * STEPS:
                bad[:] = False
        if bad.any():
            problems.append(f"{n}: {int(bad.sum())} elements off, max error {float(err.max()):.3g} (scale {scale:.3g})")
    print(f"{'ok  ' if not problems else 'FAIL'} {name} ({' '.join(flags)}): losses {['%.5f' % l for l in ffc_losses]}")
    return problems


def main():
    ffc, work, models = sys.argv[1], sys.argv[2], sys.argv[3:]
    failed = 0
    for i, m in enumerate(models):
        config = i
        if "@" in m:
            m, config = m.split("@")[0], int(m.split("@")[1])
        problems = check(ffc, work, m, config)
        for p in problems:
            print(f"    {p}")
        failed += bool(problems)
    print(f"train_check: {len(models) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
