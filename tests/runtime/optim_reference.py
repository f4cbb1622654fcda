#!/usr/bin/env python3
"""Reference optimizer steps from torch.optim for tests/runtime/init_optim_test.cc.

Usage: optim_reference.py OUTDIR

For every configuration below it runs a few steps of torch.optim.SGD / Adam / AdamW (single-tensor
code path, foreach=False) on a small random tensor and writes, as .npy files in OUTDIR:
  <name>_w0.npy          the initial weights
  <name>_g<k>.npy        the gradient of step k (1-based)
  <name>_w<k>.npy        the weights after step k
  <name>_buf<k>.npy      SGD's momentum buffer after step k (when momentum != 0)
  <name>_m<k>.npy, <name>_v<k>.npy   Adam's moments after step k
and configs.txt, one line per configuration:
  name kind steps lr momentum dampening weight_decay nesterov beta1 beta2 eps
(kind: sgd, adam or adamw; nesterov 0 or 1). Exits with status 77 when numpy or torch is missing.
"""
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the C++ test skips on this status
    print(f"optim_reference.py: {e}", file=sys.stderr)
    sys.exit(77)

STEPS = 5
SHAPE = (7, 13)

CONFIGS = [
    # name, kind, hyper-parameters
    ("sgd_plain", "sgd", dict(lr=0.1)),
    ("sgd_wd", "sgd", dict(lr=0.1, weight_decay=0.05)),
    ("sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd_nesterov", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_dampening", "sgd", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    ("sgd_momentum_wd", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov_wd", "sgd", dict(lr=0.03, momentum=0.95, weight_decay=1e-4, nesterov=True)),
    ("adam", "adam", dict(lr=1e-3)),
    ("adam_custom", "adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6)),
    ("adam_wd", "adam", dict(lr=1e-2, weight_decay=0.1)),
    ("adamw", "adamw", dict(lr=1e-2)),  # AdamW's default weight_decay, 1e-2
    ("adamw_custom", "adamw", dict(lr=3e-3, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.2)),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    lines = []
    for name, kind, hp in CONFIGS:
        w = torch.randn(SHAPE, generator=gen, dtype=torch.float32)
        p = torch.nn.Parameter(w.clone())
        if kind == "sgd":
            opt = torch.optim.SGD([p], foreach=False, **hp)
        elif kind == "adam":
            opt = torch.optim.Adam([p], foreach=False, **hp)
        else:
            opt = torch.optim.AdamW([p], foreach=False, **hp)
        np.save(os.path.join(out, f"{name}_w0.npy"), w.numpy())
        for k in range(1, STEPS + 1):
            g = torch.randn(SHAPE, generator=gen, dtype=torch.float32) * (0.5 + k)
            np.save(os.path.join(out, f"{name}_g{k}.npy"), g.numpy())
            p.grad = g.clone()
            opt.step()
            np.save(os.path.join(out, f"{name}_w{k}.npy"), p.detach().numpy())
            st = opt.state[p]
            if kind == "sgd":
                if st.get("momentum_buffer") is not None:
                    np.save(os.path.join(out, f"{name}_buf{k}.npy"), st["momentum_buffer"].numpy())
            else:
                np.save(os.path.join(out, f"{name}_m{k}.npy"), st["exp_avg"].numpy())
                np.save(os.path.join(out, f"{name}_v{k}.npy"), st["exp_avg_sq"].numpy())
        d = opt.defaults
        betas = d.get("betas", (0.0, 0.0))
        lines.append(" ".join(str(x) for x in [
            name, kind, STEPS, repr(float(d["lr"])), repr(float(d.get("momentum", 0.0))),
            repr(float(d.get("dampening", 0.0))), repr(float(d.get("weight_decay", 0.0))),
            int(bool(d.get("nesterov", False))), repr(float(betas[0])), repr(float(betas[1])),
            repr(float(d.get("eps", 0.0)))]))
    with open(os.path.join(out, "configs.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
