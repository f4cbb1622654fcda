"""A PyTorch interpreter of ffc's .ff model format, for reference tests.

It reads the subset of .ff files that tests use (plain names, one op per line) and runs the model
with torch.nn.functional, parameters named as ffc names them (`<op>.<param>`), so that a test can
train the same model with the same weights and data in ffc and in PyTorch and compare.
"""
import math
import re

import torch
import torch.nn.functional as F

_LINE = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*=\s*(\w+)\((.*)\)\s*(?::\s*(.*?))?\s*(?:#.*)?$")


def _split_args(s):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _value(v):
    if v.startswith("["):
        return [("N" if x.strip() == "N" else int(x)) for x in v[1:-1].split(",") if x.strip()]
    if v in ("true", "false"):
        return v == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def _pair(v, default):
    if v is None:
        return default
    return tuple(v) if isinstance(v, list) else (v, v)


class Op:
    def __init__(self, name, kind, inputs, attrs, type_text):
        self.name, self.kind, self.inputs, self.attrs, self.type_text = name, kind, inputs, attrs, type_text


def parse(path):
    ops = []
    for line in open(path):
        if not line.strip() or line.lstrip().startswith("#") or line.startswith("model "):
            continue
        m = _LINE.match(line)
        if not m:
            raise ValueError(f"cannot read: {line!r}")
        name, kind, args, type_text = m.groups()
        inputs, attrs = [], {}
        for a in _split_args(args):
            if "=" in a:
                k, v = a.split("=", 1)
                attrs[k.strip()] = _value(v.strip())
            else:
                inputs.append(a)
        ops.append(Op(name, kind, inputs, attrs, type_text))
    return ops


def _act(x, a):
    return {None: x, "none": x}.get(a, None) if a in (None, "none") else {
        "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu}[a](x)


def param_shapes(ops):
    """The parameters (and running statistics) of every op, as ffc declares them."""
    shapes, known = {}, {}
    for op in ops:
        t = op.type_text
        if t:
            dims = t[t.index("[") + 1:t.rindex("]")]
            known[op.name] = [d for d in dims.split(",") if d]
        x = known.get(op.inputs[0]) if op.inputs else None
        a = op.attrs
        if op.kind == "conv2d":
            k = _pair(a["kernel"], None)
            cin = int(x[1])
            shapes[f"{op.name}.weight"] = (a["out_channels"], cin // a.get("groups", 1), k[0], k[1])
            if a.get("bias", True):
                shapes[f"{op.name}.bias"] = (a["out_channels"],)
        elif op.kind == "linear":
            shapes[f"{op.name}.weight"] = (a["out_features"], int(x[-1]))
            if a.get("bias", True):
                shapes[f"{op.name}.bias"] = (a["out_features"],)
        elif op.kind == "embedding":
            shapes[f"{op.name}.weight"] = (a["num_embeddings"], a["embedding_dim"])
        elif op.kind == "batch_norm":
            c = int(x[1])
            if a.get("affine", True):
                shapes[f"{op.name}.weight"] = (c,)
                shapes[f"{op.name}.bias"] = (c,)
            shapes[f"{op.name}.running_mean"] = (c,)
            shapes[f"{op.name}.running_var"] = (c,)
        elif op.kind == "layer_norm" and a.get("affine", True):
            d = int(x[-1])
            shapes[f"{op.name}.weight"] = (d,)
            shapes[f"{op.name}.bias"] = (d,)
    return shapes


def forward(ops, params, feeds, training=True):
    """Runs the model; returns the dict of every op's output."""
    v = dict(feeds)
    p = lambda n: params.get(n)
    for op in ops:
        a, n = op.attrs, op.name
        xs = [v[i] for i in op.inputs]
        k = op.kind
        if k == "input":
            continue
        if k == "conv2d":
            y = F.conv2d(xs[0], p(f"{n}.weight"), p(f"{n}.bias"), _pair(a.get("stride"), (1, 1)),
                         _pair(a.get("padding"), (0, 0)), _pair(a.get("dilation"), (1, 1)), a.get("groups", 1))
            y = _act(y, a.get("activation"))
        elif k == "pool2d":
            ks, st, pd = _pair(a["kernel"], None), _pair(a["stride"], None), _pair(a.get("padding"), (0, 0))
            if a["type"] == "max":
                y = F.max_pool2d(xs[0], ks, st, pd, ceil_mode=a.get("ceil_mode", False))
            else:
                y = F.avg_pool2d(xs[0], ks, st, pd, ceil_mode=a.get("ceil_mode", False),
                                 count_include_pad=a.get("count_include_pad", True))
            y = _act(y, a.get("activation"))
        elif k == "linear":
            y = _act(F.linear(xs[0], p(f"{n}.weight"), p(f"{n}.bias")), a.get("activation"))
        elif k == "matmul":
            A = xs[0].transpose(-1, -2) if a.get("transpose_a") else xs[0]
            B = xs[1].transpose(-1, -2) if a.get("transpose_b") else xs[1]
            y = torch.matmul(A, B)
        elif k == "embedding":
            y = F.embedding(xs[0], p(f"{n}.weight"))
        elif k in ("relu", "sigmoid", "tanh", "gelu"):
            y = _act(xs[0], k)
        elif k == "clip":
            y = torch.clamp(xs[0], a["min"], a["max"])
        elif k in ("add", "sub", "mul"):
            y = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}[k](xs[0], xs[1])
        elif k == "scale":
            y = xs[0] * a["factor"]
        elif k == "dropout":
            assert a.get("rate", 0.5) == 0 or not training, "reference runs need dropout off"
            y = xs[0]
        elif k == "batch_norm":
            y = F.batch_norm(xs[0], p(f"{n}.running_mean"), p(f"{n}.running_var"), p(f"{n}.weight"), p(f"{n}.bias"),
                             training=training, momentum=a.get("momentum", 0.1), eps=a.get("eps", 1e-5))
            y = _act(y, a.get("activation"))
        elif k == "layer_norm":
            y = F.layer_norm(xs[0], (xs[0].shape[-1],), p(f"{n}.weight"), p(f"{n}.bias"), a.get("eps", 1e-5))
        elif k == "softmax":
            y = F.softmax(xs[0], dim=a.get("axis", -1))
        elif k == "log_softmax":
            y = F.log_softmax(xs[0], dim=a.get("axis", -1))
        elif k == "flat":
            y = torch.flatten(xs[0], 1)
        elif k == "reshape":
            y = xs[0].reshape([xs[0].shape[0] if d == "N" else d for d in a["shape"]])
        elif k == "transpose":
            y = xs[0].permute(*a["perm"])
        elif k == "concat":
            y = torch.cat(xs, dim=a.get("axis", 1))
        elif k == "softmax_cross_entropy":
            y = F.cross_entropy(xs[0].reshape(-1, xs[0].shape[-1]), xs[1].reshape(-1))
        elif k == "mse_loss":
            y = F.mse_loss(xs[0], xs[1])
        else:
            raise NotImplementedError(k)
        v[n] = y
    return v


def training_loss(ops, values, labels):
    """The loss ffc trains with: the model's loss op, or cross entropy on its output (on the
    logits when the output is a softmax over its last dim), as passes/add_loss does."""
    for op in ops:
        if op.kind in ("softmax_cross_entropy", "mse_loss"):
            return values[op.name]
    used = {i for op in ops for i in op.inputs}
    outs = [op for op in ops if op.kind != "input" and op.name not in used]
    assert len(outs) == 1
    out = outs[0]
    logits = values[out.name]
    if out.kind == "softmax" and out.attrs.get("axis", -1) in (-1, logits.dim() - 1):
        logits = values[out.inputs[0]]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
