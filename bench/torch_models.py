#!/usr/bin/env python3
"""PyTorch twins of ffc's example models (examples/*.ff), for bench/pytorch_bench.py.

Each model has the same ops, shapes and parameters as its .ff file:

- alexnet: FlexFlow's AlexNet (examples/alexnet.ff), 3x229x229 input, five convs (bias, relu),
  three 3x3/2 max pools, linear 9216-4096-4096-10 (relu on the first two), no dropout, no batch
  norm. The .ff ends in softmax; ffc's loss is softmax cross entropy on the logits before it
  (add_loss: "on the logits when it ends in softmax"), so here the model returns the logits and
  the loss is F.cross_entropy. (ffc still evaluates the [N,10] softmax op itself: negligible.)
- resnet50: torchvision.models.resnet50 (examples/resnet50.ff is torchvision's ResNet-50 v1.5,
  1000 classes; its 7x7 average pool equals torchvision's adaptive average pool at 224x224).
- inception_v3: torchvision.models.inception_v3(aux_logits=False, init_weights=False) with its
  dropout before fc removed (examples/inception_v3.ff has none), transform_input=False, 299x299.
- transformer: examples/transformer.ff op for op: token + learned position embeddings (positions
  are a second i64 input fed 0..127), 2 pre-norm layers (layer_norm eps 1e-5 with affine; separate
  q, k, v linears with bias; scores q k^T NOT scaled, NO causal mask; softmax; exact-erf GELU MLP
  of 1024), a final layer_norm and a linear to 1000 vocabulary logits [N,128,1000]; the loss is
  cross entropy over all N*128 positions (mean), as ffc's.

No .ff example has dropout, so no model here has any.

`python3 bench/torch_models.py --check [--ffc build/tools/ffc/ffc]` builds every model on the CPU,
runs a forward and backward at batch 2, prints parameter counts and, given ffc, compares them
(and the multiset of parameter shapes) with what `ffc compile` plans for the .ff model.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ("alexnet", "resnet50", "inception_v3", "transformer")

# Shapes of one sample's inputs and the number of classes, as in examples/*.ff.
SEQ = 128
VOCAB = 1000
INFO = {
    "alexnet": {"image": (3, 229, 229), "classes": 10},
    "resnet50": {"image": (3, 224, 224), "classes": 1000},
    "inception_v3": {"image": (3, 299, 299), "classes": 1000},
    "transformer": {"seq": SEQ, "classes": VOCAB},
}


class AlexNet(nn.Module):
    """examples/alexnet.ff (FlexFlow's examples/cpp/AlexNet), returning the logits before softmax."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 11, stride=4, padding=2)      # [N,64,56,56]
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)               # [N,192,27,27]
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)              # [N,384,13,13]
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.linear1 = nn.Linear(256 * 6 * 6, 4096)
        self.linear2 = nn.Linear(4096, 4096)
        self.linear3 = nn.Linear(4096, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2)               # pool1 [N,64,27,27]
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, 2)               # pool2 [N,192,13,13]
        x = F.relu(self.conv3(x))
        x = F.relu(self.conv4(x))
        x = F.max_pool2d(F.relu(self.conv5(x)), 3, 2)               # pool5 [N,256,6,6]
        x = torch.flatten(x, 1)                                     # flat1 [N,9216]
        x = F.relu(self.linear1(x))
        x = F.relu(self.linear2(x))
        return self.linear3(x)                                      # logits; the .ff's softmax follows


class Block(nn.Module):
    """One pre-norm layer of examples/transformer.ff: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, d=256, heads=4, mlp=1024, attention="math"):
        super().__init__()
        self.heads, self.attention = heads, attention
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn_q = nn.Linear(d, d)
        self.attn_k = nn.Linear(d, d)
        self.attn_v = nn.Linear(d, d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp_fc = nn.Linear(d, mlp)
        self.mlp_proj = nn.Linear(mlp, d)

    def forward(self, x):
        n, s, d = x.shape
        h = self.ln_1(x)
        q = self.attn_q(h).reshape(n, s, self.heads, d // self.heads).transpose(1, 2)   # [N,4,128,64]
        k = self.attn_k(h).reshape(n, s, self.heads, d // self.heads).transpose(1, 2)
        v = self.attn_v(h).reshape(n, s, self.heads, d // self.heads).transpose(1, 2)
        if self.attention == "sdpa":
            # The same function (scale 1, no mask, no dropout) through PyTorch's fused kernels.
            ctx = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1))   # q k^T, unscaled, unmasked, as the .ff
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v)                         # [N,4,128,64]
        ctx = ctx.transpose(1, 2).reshape(n, s, d)
        x = x + self.attn_proj(ctx)
        x = x + self.mlp_proj(F.gelu(self.mlp_fc(self.ln_2(x))))   # exact (erf) GELU, as ffc's
        return x


class Transformer(nn.Module):
    """examples/transformer.ff: inputs tokens and positions, i64 [N,128]; output [N,128,1000]."""

    def __init__(self, vocab=VOCAB, seq=SEQ, d=256, heads=4, layers=2, mlp=1024, attention="math"):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Embedding(seq, d)
        self.h = nn.ModuleList([Block(d, heads, mlp, attention) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.lm_head = nn.Linear(d, vocab)

    def forward(self, tokens, positions):
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def build_model(name, attention="math"):
    """The PyTorch model for examples/<name>.ff, on the CPU, in training mode."""
    if name == "alexnet":
        m = AlexNet(INFO["alexnet"]["classes"])
    elif name == "resnet50":
        import torchvision
        m = torchvision.models.resnet50(weights=None)
    elif name == "inception_v3":
        import torchvision
        m = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                            transform_input=False)
        m.dropout = nn.Identity()   # inception_v3.ff has no dropout before fc
    elif name == "transformer":
        m = Transformer(attention=attention)
    else:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    return m.train()


def make_batch(name, batch, device, generator=None):
    """Synthetic inputs and labels for `batch` samples: (tuple of model inputs, labels)."""
    info = INFO[name]
    classes = info["classes"]
    if name == "transformer":
        tokens = torch.randint(0, VOCAB, (batch, SEQ), generator=generator).to(device)
        positions = torch.arange(SEQ).unsqueeze(0).expand(batch, SEQ).contiguous().to(device)
        labels = torch.randint(0, classes, (batch, SEQ), generator=generator).to(device)
        return (tokens, positions), labels
    images = torch.randn((batch,) + info["image"], generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    return (images,), labels


def loss_fn(out, labels):
    """Softmax cross entropy on the logits, mean over every labelled position (ffc's loss)."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1))


# ---- --check ------------------------------------------------------------------------------------

def torch_tensors(model):
    """(trainable parameter shapes, state shapes): buffers without num_batches_tracked."""
    params = [tuple(p.shape) for p in model.parameters()]
    state = [tuple(b.shape) for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]
    return params, state


def ffc_tensors(ffc, model_path):
    """(trainable shapes, state shapes) that `ffc compile` plans for the model (model.cc's params)."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([ffc, "compile", model_path, "-g", "1", "-b", "2", "-o", d, "--name", "check",
                        "--optimizer", "sgd"], check=True, stdout=subprocess.DEVNULL)
        text = open(os.path.join(d, "model.cc")).read()
    params, state = [], []
    pat = re.compile(r'm\.params\.push_back\(\{"([^"]+)", [^,]+, \d+, (true|false), \{([\d, ]*)\}')
    for name, trainable, dims in pat.findall(text):
        shape = tuple(int(x) for x in dims.split(",") if x.strip())
        (params if trainable == "true" else state).append(shape)
    return params, state


def count(shapes):
    return sum(math.prod(s) for s in shapes)


def ffc_name(torch_name):
    """ffc's name of a PyTorch parameter: torchvision's module path with '.' -> '_', lower case
    (layer1.0.conv1 -> layer1_0_conv1, Mixed_5b.branch1x1.conv -> mixed_5b_branch1x1_conv),
    downsample.0/.1 -> downsample_conv/_bn, h.0.ln_1 -> h0_ln_1; then '.weight' etc."""
    module, param = torch_name.rsplit(".", 1)
    op = module.replace(".", "_").lower()
    op = re.sub(r"downsample_0$", "downsample_conv", op)
    op = re.sub(r"downsample_1$", "downsample_bn", op)
    op = re.sub(r"^h_(\d+)_", r"h\1_", op)
    return f"{op}.{param}"


def against_interpreter(name, model, repo, inputs, labels):
    """Runs examples/<name>.ff with tests/reference/ff_torch.py (a PyTorch interpreter of the .ff
    format) on this model's weights and inputs; returns (max relative difference of the logits,
    of the loss) or raises when the parameters do not map one to one."""
    sys.path.insert(0, os.path.join(repo, "tests", "reference"))
    import ff_torch
    ops = ff_torch.parse(os.path.join(repo, "examples", name + ".ff"))
    shapes = ff_torch.param_shapes(ops)
    params = {}
    for n, t in model.state_dict().items():
        if n.endswith("num_batches_tracked"):
            continue
        fn = ffc_name(n)
        if fn not in shapes or tuple(shapes[fn]) != tuple(t.shape):
            raise ValueError(f"{n} -> {fn}: not in the .ff model with shape {tuple(t.shape)}")
        params[fn] = t.detach().clone()
    missing = sorted(set(shapes) - set(params))
    if missing:
        raise ValueError(f"the .ff model has parameters this one lacks: {missing[:5]}")
    input_ops = [op.name for op in ops if op.kind == "input"]
    with torch.no_grad():
        values = ff_torch.forward(ops, params, dict(zip(input_ops, inputs)), training=True)
        ref_loss = ff_torch.training_loss(ops, values, labels)
        used = {i for op in ops for i in op.inputs}
        out = [op for op in ops if op.kind != "input" and op.name not in used][0]
        logits = values[out.inputs[0]] if out.kind == "softmax" else values[out.name]
        mine = model(*inputs)
        loss = loss_fn(mine, labels)
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
    return rel(mine, logits), rel(loss, ref_loss)


def check(args):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch.manual_seed(0)
    ok = True
    for name in args.models:
        m = build_model(name)
        inputs, labels = make_batch(name, 2, "cpu")
        out = m(*inputs)
        loss = loss_fn(out, labels)
        loss.backward()
        p, s = torch_tensors(m)
        line = (f"{name:13s} out {tuple(out.shape)} loss {loss.item():.4f} (ln C = "
                f"{math.log(INFO[name]['classes']):.4f})  torch: {count(p):,} params in {len(p)} tensors, "
                f"{count(s):,} state values in {len(s)}")
        print(line)
        if args.ffc:
            fp, fs = ffc_tensors(args.ffc, os.path.join(repo, "examples", name + ".ff"))
            same = sorted(fp) == sorted(p) and sorted(fs) == sorted(s)
            ok &= same
            print(f"{'':13s} ffc:   {count(fp):,} params in {len(fp)} tensors, {count(fs):,} state values "
                  f"in {len(fs)}  -> {'same shapes' if same else 'DIFFERENT'}")
            if not same:
                from collections import Counter
                print(f"{'':13s} only torch: {sorted((Counter(p) - Counter(fp)).elements())}")
                print(f"{'':13s} only ffc:   {sorted((Counter(fp) - Counter(p)).elements())}")
        ref = os.path.join(repo, "tests", "reference", "ff_torch.py")
        if os.path.exists(ref):
            m2 = build_model(name)   # fresh running statistics: both runs start from the same
            try:
                d_out, d_loss = against_interpreter(name, m2, repo, inputs, labels)
                good = d_out < 1e-4 and d_loss < 1e-5
                ok &= good
                print(f"{'':13s} vs the .ff run by tests/reference/ff_torch.py on the same weights and "
                      f"inputs: logits differ by {d_out:.1e}, loss by {d_loss:.1e} (relative)"
                      f"{'' if good else '  -> DIFFERENT'}")
            except ValueError as e:
                ok = False
                print(f"{'':13s} vs the .ff interpreter: {e}")
    return 0 if ok else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="build each model on the CPU and check it")
    ap.add_argument("--ffc", help="the ffc binary: compare parameter shapes with ffc's plan")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    a = ap.parse_args()
    if not a.check:
        ap.print_help()
        sys.exit(0)
    sys.exit(check(a))
