#!/usr/bin/env python3
"""Exports the models of the ONNX import tests (issue 3) into a directory.

For each model it writes MODEL.onnx and MODEL.json; the JSON sidecar lists what the importer must
find in the file: the names and element counts of the PyTorch model's parameters and buffers (without
num_batches_tracked, which ONNX does not carry), so that the test can check that every weight came
through under its PyTorch name.

Models are exported as torch.onnx.export writes them for training: batch norm in training mode,
dropout set to p=0, no constant folding, batch 2 (the _dynamic variant with a symbolic batch axis),
opset 13 (a few variants 11 and 17). Weights are randomly initialized (torchvision has no
pretrained weights here); the importer only needs their names and shapes.

Usage: export_models.py OUTDIR [MODEL...]   (default: every model; `--list` prints the names)
"""
import json
import os
import sys
import warnings

import torch
import torchvision

BATCH = 2


def transformer():
    layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                             batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), (BATCH, 16, 64)


class TinyLM(torch.nn.Module):
    """The ops no torchvision model has: an embedding, LayerNorm, GELU (erf), chunk (Slice), split
    (Split), a division by a constant and log_softmax."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 32)
        self.norm = torch.nn.LayerNorm(32)
        self.up = torch.nn.Linear(32, 64)
        self.act = torch.nn.GELU()
        self.head = torch.nn.Linear(16, 10)

    def forward(self, tokens):
        h = self.act(self.up(self.norm(self.emb(tokens))))
        gate, value = h.chunk(2, dim=-1)
        h = value * torch.sigmoid(gate) / 4.0
        a, b = torch.split(h, [16, 16], dim=-1)
        return torch.log_softmax(self.head(a + torch.tanh(b)), dim=-1)


def tiny_lm():
    return TinyLM(), (BATCH, 8)


def vision(ctor, size=224, **kw):
    return lambda: (ctor(weights=None, **kw), (BATCH, 3, size, size))


# name -> (constructor returning (module, input shape), opset[, dynamic batch])
MODELS = {
    "alexnet": (vision(torchvision.models.alexnet), 13),
    "vgg11": (vision(torchvision.models.vgg11), 13),
    "resnet18": (vision(torchvision.models.resnet18), 13),
    "resnet18_opset11": (vision(torchvision.models.resnet18), 11),
    "resnet18_opset17": (vision(torchvision.models.resnet18), 17),
    "resnet50": (vision(torchvision.models.resnet50), 13),
    "inception_v3": (vision(torchvision.models.inception_v3, size=299, aux_logits=False, init_weights=True), 13),
    "squeezenet1_0": (vision(torchvision.models.squeezenet1_0), 13),
    "mobilenet_v2": (vision(torchvision.models.mobilenet_v2), 13),
    "transformer": (transformer, 13),
    "transformer_dynamic": (transformer, 13, True),
    "tiny_lm": (tiny_lm, 13),
    "tiny_lm_opset17": (tiny_lm, 17),
}


def export(name, outdir):
    make, opset, *dynamic = MODELS[name]
    torch.manual_seed(0)
    model, shape = make()
    example = torch.randint(0, 100, shape) if isinstance(model, TinyLM) else torch.randn(*shape)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    state = {k: v for k, v in model.state_dict(keep_vars=True).items() if not k.endswith("num_batches_tracked")}
    path = os.path.join(outdir, name + ".onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, path, opset_version=opset,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}} if dynamic else None)
    sidecar = {
        "model": name,
        "opset": opset,
        "input_shape": list(shape),
        "params": {k: v.numel() for k, v in state.items()},
        "param_count": len(state),
        "param_elements": sum(v.numel() for v in state.values()),
    }
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(sidecar, f, indent=1)


def main(argv):
    if len(argv) >= 2 and argv[1] == "--list":
        print("\n".join(MODELS))
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    outdir = argv[1]
    os.makedirs(outdir, exist_ok=True)
    names = argv[2:] or list(MODELS)
    torch.set_num_threads(1)
    for name in names:
        if name not in MODELS:
            print(f"unknown model {name}; known: {', '.join(MODELS)}", file=sys.stderr)
            return 2
        export(name, outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
