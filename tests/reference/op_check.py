#!/usr/bin/env python3
"""Checks every op's forward and backward on ffc's cpu kernels against PyTorch.

For each case it writes a one-op .ff model (the op, its inputs, and an mse loss against a random
target unless the op is itself a loss), random inputs and parameters as .npy files, runs
`ffc-opcheck` (one forward and backward through ffc's serial executor), and compares the op's
output, the loss, and the gradients of every input and parameter with torch.autograd's.

usage: op_check.py FFC_OPCHECK WORKDIR [--cases N] [--seed S] [--only KIND]
Exit 0 when every case matches within float32 tolerance; 1 otherwise, naming each mismatch.
"""
import argparse
import math
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)


class Case:
    def __init__(self, name, kind):
        self.name = name
        self.kind = kind
        self.inputs = []      # (name, np array, dtype str, wants grad)
        self.params = {}      # ffc param name -> np array
        self.op_line = ""
        self.torch_fn = None  # (inputs dict of torch tensors, params dict) -> output tensor
        self.is_loss = False
        self.check_params_after = []  # state params compared after the forward (running stats)


def ff_type(arr, dtype, batch=True):
    dims = (["N"] if batch else [str(arr.shape[0])]) + [str(d) for d in arr.shape[1:]]
    return f"{dtype}[{','.join(dims)}]"


def rnd(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def act_fn(name):
    return {"none": lambda t: t, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
            "gelu": F.gelu}[name]


def make_cases(rng, count):
    cases = []
    acts = ["none", "relu", "sigmoid", "tanh", "gelu"]
    for i in range(count):
        # conv2d: odd sizes, strides, padding, dilation, groups (incl. depthwise), bias, activation
        g = rng.choice([1, 1, 2, 3])
        depthwise = i % 3 == 2
        cin = g * int(rng.integers(1, 4))
        cout = g * int(rng.integers(1, 4))
        if depthwise:
            cin = int(rng.integers(2, 5))
            g = cin
            cout = cin * int(rng.integers(1, 3))
        n = int(rng.integers(1, 4))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        h = dh * (kh - 1) + int(rng.integers(1, 9))
        w = dw * (kw - 1) + int(rng.integers(1, 9))
        bias = bool(rng.integers(0, 2))
        act = acts[i % len(acts)]
        c = Case(f"conv2d_{i}", "conv2d")
        c.inputs.append(("x", rnd(rng, n, cin, h, w), "f32", True))
        c.params["op.weight"] = rnd(rng, cout, cin // g, kh, kw, scale=0.5)
        if bias:
            c.params["op.bias"] = rnd(rng, cout, scale=0.5)
        c.op_line = (f"op = conv2d(x, out_channels={cout}, kernel=[{kh},{kw}], stride=[{sh},{sw}], "
                     f"padding=[{ph},{pw}], dilation=[{dh},{dw}], groups={g}, bias={'true' if bias else 'false'}, "
                     f"activation={act})")
        c.torch_fn = (lambda x, p, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, g=g, act=act:
                      act_fn(act)(F.conv2d(x["x"], p["op.weight"], p.get("op.bias"), (sh, sw), (ph, pw), (dh, dw), g)))
        cases.append(c)

        # pool2d: max / avg, ceil_mode, padding, count_include_pad
        kind = "max" if i % 2 == 0 else "avg"
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        ph, pw = int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw // 2 + 1))
        ceil = bool(rng.integers(0, 2))
        cip = bool(rng.integers(0, 2))
        h, w = kh + int(rng.integers(0, 8)), kw + int(rng.integers(0, 8))
        c = Case(f"pool2d_{kind}_{i}", "pool2d")
        c.inputs.append(("x", rnd(rng, 2, 3, h, w), "f32", True))
        extra = f", ceil_mode={'true' if ceil else 'false'}, count_include_pad={'true' if cip else 'false'}"
        c.op_line = (f"op = pool2d(x, type={kind}, kernel=[{kh},{kw}], stride=[{sh},{sw}], padding=[{ph},{pw}]{extra})")
        if kind == "max":
            c.torch_fn = lambda x, p, k=(kh, kw), s=(sh, sw), pd=(ph, pw), ceil=ceil: F.max_pool2d(
                x["x"], k, s, pd, ceil_mode=ceil)
        else:
            c.torch_fn = lambda x, p, k=(kh, kw), s=(sh, sw), pd=(ph, pw), ceil=ceil, cip=cip: F.avg_pool2d(
                x["x"], k, s, pd, ceil_mode=ceil, count_include_pad=cip)
        cases.append(c)

        # linear on 2-D and 3-D inputs
        rank3 = i % 2 == 1
        k, o = int(rng.integers(1, 20)), int(rng.integers(1, 17))
        bias = bool(rng.integers(0, 2))
        act = acts[(i + 1) % len(acts)]
        c = Case(f"linear_{i}", "linear")
        shape = (3, int(rng.integers(1, 6)), k) if rank3 else (int(rng.integers(1, 7)), k)
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        c.params["op.weight"] = rnd(rng, o, k, scale=0.5)
        if bias:
            c.params["op.bias"] = rnd(rng, o, scale=0.5)
        c.op_line = f"op = linear(x, out_features={o}, bias={'true' if bias else 'false'}, activation={act})"
        c.torch_fn = lambda x, p, act=act: act_fn(act)(F.linear(x["x"], p["op.weight"], p.get("op.bias")))
        cases.append(c)

        # matmul: transposes and broadcast leading dims
        ta, tb = bool(i % 2), bool((i // 2) % 2)
        m, kk, nn_ = int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
        lead = int(rng.integers(1, 4))
        a_shape = (2, lead) + ((kk, m) if ta else (m, kk))
        b_lead = (2, 1) if i % 3 == 0 else (2, lead)
        b_shape = b_lead + ((nn_, kk) if tb else (kk, nn_))
        c = Case(f"matmul_{i}", "matmul")
        c.inputs.append(("a", rnd(rng, *a_shape), "f32", True))
        c.inputs.append(("b", rnd(rng, *b_shape), "f32", True))
        c.op_line = f"op = matmul(a, b, transpose_a={'true' if ta else 'false'}, transpose_b={'true' if tb else 'false'})"
        c.torch_fn = lambda x, p, ta=ta, tb=tb: torch.matmul(
            x["a"].transpose(-1, -2) if ta else x["a"], x["b"].transpose(-1, -2) if tb else x["b"])
        cases.append(c)

        # embedding
        num, dim = int(rng.integers(2, 30)), int(rng.integers(1, 9))
        c = Case(f"embedding_{i}", "embedding")
        c.inputs.append(("ids", rng.integers(0, num, size=(3, int(rng.integers(1, 6)))).astype(np.int64), "i64", False))
        c.params["op.weight"] = rnd(rng, num, dim)
        c.op_line = f"op = embedding(ids, num_embeddings={num}, embedding_dim={dim})"
        c.torch_fn = lambda x, p: F.embedding(x["ids"], p["op.weight"])
        cases.append(c)

        # element-wise unary
        for kind, fn in [("relu", F.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("gelu", F.gelu)]:
            c = Case(f"{kind}_{i}", kind)
            shape = tuple([int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))])
            c.inputs.append(("x", rnd(rng, *shape), "f32", True))
            c.op_line = f"op = {kind}(x)"
            c.torch_fn = lambda x, p, fn=fn: fn(x["x"])
            cases.append(c)

        # clip (ReLU6 and hardtanh) and scale
        c = Case(f"clip_{i}", "clip")
        shape = tuple([int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))])
        c.inputs.append(("x", rnd(rng, *shape, scale=4.0), "f32", True))
        lo, hi = (0.0, 6.0) if i % 2 == 0 else (-1.0, 1.5)
        c.op_line = f"op = clip(x, min={lo}, max={hi})"
        c.torch_fn = lambda x, p, lo=lo, hi=hi: torch.clamp(x["x"], lo, hi)
        cases.append(c)

        c = Case(f"scale_{i}", "scale")
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        factor = float(rng.uniform(-2, 2))
        c.op_line = f"op = scale(x, factor={factor!r})"
        c.torch_fn = lambda x, p, factor=factor: x["x"] * factor
        cases.append(c)

        # binary with broadcasting
        for kind, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul)]:
            rank = int(rng.integers(2, 5))
            full = [int(rng.integers(2, 5)) for _ in range(rank)]
            b_rank = int(rng.integers(1, rank + 1))
            b_shape = [d if rng.integers(0, 2) else 1 for d in full[rank - b_rank:]]
            if b_rank == rank:
                b_shape[0] = full[0]  # the batch N leads both operands
            c = Case(f"{kind}_{i}", kind)
            c.inputs.append(("a", rnd(rng, *full), "f32", True))
            # A lower-rank b has no batch dim: it is broadcast over the batch.
            c.inputs.append(("b", rnd(rng, *b_shape), "f32", True, b_rank == rank))
            c.op_line = f"op = {kind}(a, b)"
            c.torch_fn = lambda x, p, fn=fn: fn(x["a"], x["b"])
            cases.append(c)

        # batch_norm (training mode): 2-D and 4-D, affine or not, activation
        four = i % 2 == 0
        ch = int(rng.integers(1, 6))
        shape = (int(rng.integers(2, 5)), ch, int(rng.integers(1, 6)), int(rng.integers(1, 6))) if four else (
            int(rng.integers(2, 9)), ch)
        affine = i % 3 != 1
        act = "relu" if i % 4 == 0 else "none"
        c = Case(f"batch_norm_{i}", "batch_norm")
        c.inputs.append(("x", rnd(rng, *shape, scale=2.0) + 0.5, "f32", True))
        if affine:
            c.params["op.weight"] = rnd(rng, ch) + 1.0
            c.params["op.bias"] = rnd(rng, ch)
        c.params["op.running_mean"] = rnd(rng, ch)
        c.params["op.running_var"] = np.abs(rnd(rng, ch)) + 0.5
        c.check_params_after = ["op.running_mean", "op.running_var"]
        c.op_line = f"op = batch_norm(x, eps=1e-05, momentum=0.1, affine={'true' if affine else 'false'}, activation={act})"

        def bn(x, p, affine=affine, act=act):
            rm, rv = p["op.running_mean"].detach().clone(), p["op.running_var"].detach().clone()
            y = F.batch_norm(x["x"], rm, rv, p.get("op.weight") if affine else None,
                             p.get("op.bias") if affine else None, training=True, momentum=0.1, eps=1e-5)
            x["__after__"] = {"op.running_mean": rm, "op.running_var": rv}
            return act_fn(act)(y)
        c.torch_fn = bn
        cases.append(c)

        # layer_norm over the last dim
        d = int(rng.integers(1, 12))
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), d)
        affine = i % 2 == 0
        c = Case(f"layer_norm_{i}", "layer_norm")
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        if affine:
            c.params["op.weight"] = rnd(rng, d) + 1.0
            c.params["op.bias"] = rnd(rng, d)
        c.op_line = f"op = layer_norm(x, affine={'true' if affine else 'false'})"
        c.torch_fn = lambda x, p, d=d, affine=affine: F.layer_norm(
            x["x"], (d,), p.get("op.weight") if affine else None, p.get("op.bias") if affine else None, 1e-5)
        cases.append(c)

        # softmax along an axis
        rank = int(rng.integers(2, 5))
        shape = tuple(int(rng.integers(1, 6)) for _ in range(rank))
        axis = int(rng.integers(-rank, rank))
        c = Case(f"softmax_{i}", "softmax")
        c.inputs.append(("x", rnd(rng, *shape, scale=3.0), "f32", True))
        c.op_line = f"op = softmax(x, axis={axis})"
        c.torch_fn = lambda x, p, axis=axis: F.softmax(x["x"], dim=axis)
        cases.append(c)

        c = Case(f"log_softmax_{i}", "log_softmax")
        c.inputs.append(("x", rnd(rng, *shape, scale=3.0), "f32", True))
        c.op_line = f"op = log_softmax(x, axis={axis})"
        c.torch_fn = lambda x, p, axis=axis: F.log_softmax(x["x"], dim=axis)
        cases.append(c)

        # flat, reshape, transpose, concat, split
        shape = (2, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        c = Case(f"flat_{i}", "flat")
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        c.op_line = "op = flat(x)"
        c.torch_fn = lambda x, p: torch.flatten(x["x"], 1)
        cases.append(c)

        c = Case(f"reshape_{i}", "reshape")
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        per = shape[1] * shape[2] * shape[3]
        c.op_line = f"op = reshape(x, shape=[N,{shape[3]},-1])"
        c.torch_fn = lambda x, p, s3=shape[3]: x["x"].reshape(x["x"].shape[0], s3, -1)
        cases.append(c)

        perm = [0] + list(rng.permutation([1, 2, 3]))
        c = Case(f"transpose_{i}", "transpose")
        c.inputs.append(("x", rnd(rng, *shape), "f32", True))
        c.op_line = f"op = transpose(x, perm=[{','.join(map(str, perm))}])"
        c.torch_fn = lambda x, p, perm=perm: x["x"].permute(*perm)
        cases.append(c)

        axis = int(rng.integers(1, 4))
        k = int(rng.integers(1, 4))
        c = Case(f"concat_{i}", "concat")
        names = []
        for j in range(k):
            s = list(shape)
            s[axis] = int(rng.integers(1, 4))
            c.inputs.append((f"x{j}", rnd(rng, *s), "f32", True))
            names.append(f"x{j}")
        c.op_line = f"op = concat({', '.join(names)}, axis={axis})"
        c.torch_fn = lambda x, p, names=names, axis=axis: torch.cat([x[n] for n in names], dim=axis)
        cases.append(c)

        axis = int(rng.integers(1, 4))
        sizes = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(2, 4)))]
        s = list(shape)
        s[axis] = sum(sizes)
        c = Case(f"split_{i}", "split")
        c.inputs.append(("x", rnd(rng, *s), "f32", True))
        c.op_line = f"op = split(x, axis={axis}, sizes=[{','.join(map(str, sizes))}])"
        # The loss reads output 0 (`op` names it); the other outputs are unused.
        c.torch_fn = lambda x, p, axis=axis, sizes=sizes: torch.split(x["x"], sizes, dim=axis)[0]
        cases.append(c)

        # losses
        classes = int(rng.integers(2, 12))
        three = i % 2 == 1
        lshape = (3, int(rng.integers(1, 5))) if three else (int(rng.integers(1, 9)),)
        c = Case(f"softmax_cross_entropy_{i}", "softmax_cross_entropy")
        c.is_loss = True
        c.inputs.append(("logits", rnd(rng, *lshape, classes, scale=2.0), "f32", True))
        c.inputs.append(("labels", rng.integers(0, classes, size=lshape).astype(np.int64), "i64", False))
        c.op_line = "op = softmax_cross_entropy(logits, labels)"
        c.torch_fn = lambda x, p, classes=classes: F.cross_entropy(x["logits"].reshape(-1, classes), x["labels"].reshape(-1))
        cases.append(c)

        c = Case(f"mse_loss_{i}", "mse_loss")
        c.is_loss = True
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 6)))
        c.inputs.append(("pred", rnd(rng, *shape), "f32", True))
        c.inputs.append(("target", rnd(rng, *shape), "f32", True))
        c.op_line = "op = mse_loss(pred, target)"
        c.torch_fn = lambda x, p: F.mse_loss(x["pred"], x["target"])
        cases.append(c)
    return cases


def close(name, got, want, problems, rtol=1e-4, atol=1e-5):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    if got.shape != want.shape:
        problems.append(f"{name}: shape {got.shape}, PyTorch {want.shape}")
        return
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
    if err > atol + rtol * scale:
        problems.append(f"{name}: max abs error {err:.3g} (scale {scale:.3g})")


def run_case(tool, work, case, rng):
    d = os.path.join(work, case.name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "in"))
    out_dir = os.path.join(d, "out")
    lines = [f"model {case.name}", ""]
    for name, arr, dt, _, *batch in case.inputs:
        lines.append(f"{name} = input() : {ff_type(arr, dt, batch[0] if batch else True)}")
        np.save(os.path.join(d, "in", f"{name}.npy"), arr)
    lines.append(case.op_line)
    xs = {name: torch.tensor(arr, requires_grad=wants) for name, arr, _, wants, *_ in case.inputs}
    ps = {k: torch.tensor(v, requires_grad=not k.endswith(("running_mean", "running_var")))
          for k, v in case.params.items()}
    y = case.torch_fn(xs, ps)
    if case.is_loss:
        loss = y
    else:
        target = rnd(rng, *y.shape)
        lines.append(f"target = input() : {ff_type(target, 'f32')}")
        lines.append(f"loss = mse_loss({'op:0' if case.kind == 'split' else 'op'}, target)")
        np.save(os.path.join(d, "in", "target.npy"), target)
        loss = F.mse_loss(y, torch.tensor(target))
    loss.backward()
    for k, v in case.params.items():
        np.save(os.path.join(d, "in", f"{k}.npy"), v)
    with open(os.path.join(d, "model.ff"), "w") as f:
        f.write("\n".join(lines) + "\n")
    batch = case.inputs[0][1].shape[0]
    proc = subprocess.run([tool, os.path.join(d, "model.ff"), "--inputs", os.path.join(d, "in"), "--out", out_dir,
                           "-b", str(batch)], capture_output=True, text=True)
    if proc.returncode != 0:
        return [f"ffc-opcheck failed ({proc.returncode}): {proc.stderr.strip()}"]
    problems = []
    load = lambda n: np.load(os.path.join(out_dir, n))
    close("loss", load("loss.npy").reshape(()), loss.detach().reshape(()), problems)
    if not case.is_loss:
        close("output", load("op.npy"), y, problems)
    for name, _, _, wants, *_ in case.inputs:
        if wants:
            close(f"grad {name}", load(f"grad.{name}.npy"), xs[name].grad, problems)
    for k, v in ps.items():
        if v.requires_grad:
            close(f"grad {k}", load(f"grad.{k}.npy"), v.grad, problems)
    for k in case.check_params_after:
        close(f"{k} after the step", load(f"param.{k}.npy"), xs["__after__"][k], problems)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("work")
    ap.add_argument("--cases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    failed = 0
    cases = make_cases(rng, args.cases)
    if args.only:
        cases = [c for c in cases if c.kind == args.only]
    kinds = set()
    for case in cases:
        kinds.add(case.kind)
        problems = run_case(args.tool, args.work, case, rng)
        if problems:
            failed += 1
            print(f"FAIL {case.name}: {case.op_line}")
            for p in problems:
                print(f"    {p}")
    print(f"op_check: {len(cases) - failed} passed, {failed} failed ({len(kinds)} op kinds)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
