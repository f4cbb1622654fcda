#!/usr/bin/env python3
"""How accurate float32 itself is on a model: one forward and backward in PyTorch (Debian's
python3-torch, through tests/reference/ff_torch.py) in float32 and in float64 from the same weights
and data, compared with ffc verify's metric (a gradient's largest difference relative to the larger
of its own scale and 1/1000 of the largest gradient's).

A partitioned program sums in another order than the serial one; on a model where float32's own
error exceeds ffc verify's tolerance, no two float32 orders of summation can agree within it.

    /usr/bin/python3 tests/equivalence/float32_accuracy.py MODEL.ff [BATCH]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import ff_torch  # noqa: E402


def main():
    model, batch = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
    ops = ff_torch.parse(model)
    torch.manual_seed(0)
    params = {}
    for n, s in ff_torch.param_shapes(ops).items():
        if n.endswith("running_var") or (n.endswith(".weight") and len(s) == 1):
            params[n] = torch.ones(s, dtype=torch.float64)
        elif n.endswith("running_mean") or len(s) == 1 and n.endswith(".bias") and "bn" in n:
            params[n] = torch.zeros(s, dtype=torch.float64)
        else:
            fan = 1
            for d in s[1:]:
                fan *= d
            params[n] = (torch.rand(s, dtype=torch.float64) * 2 - 1) / fan ** 0.5
    data = [op for op in ops if op.kind == "input"][0]
    dims = tuple(int(d) for d in data.type_text[data.type_text.index("[") + 1:-1].split(",")[1:])
    x = torch.rand((batch,) + dims, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 10, (batch,))

    def grads(dtype):
        ps = {n: v.to(dtype).clone().requires_grad_("running" not in n) for n, v in params.items()}
        values = ff_torch.forward(ops, ps, {data.name: x.to(dtype)})
        ff_torch.training_loss(ops, values, y).backward()
        return {n: p.grad.double() for n, p in ps.items() if p.grad is not None}

    g64, g32 = grads(torch.float64), grads(torch.float32)
    largest = max(g.abs().max().item() for g in g64.values())
    worst = max(((g32[n] - g64[n]).abs().max().item() / max(g64[n].abs().max().item(), 1e-3 * largest), n)
                for n in g64)
    print(f"{model} batch {batch}: float32 vs float64, largest relative gradient difference {worst[0]:.3g} ({worst[1]})")


if __name__ == "__main__":
    main()
