#!/usr/bin/env python3
"""Times PyTorch training of ffc's example models (bench/torch_models.py) on synthetic data.

    python3 bench/pytorch_bench.py --model resnet50 --batch 256 --gpus 4 --iterations 30 \\
        --warmup 10 --math tf32 --json out.json

One GPU: eager PyTorch. N > 1 GPUs: DistributedDataParallel over NCCL, one process per GPU
(GPUs 0..N-1 of those visible), started by this script with torch.multiprocessing.spawn; the
global batch is split evenly. SGD (lr 0.01, momentum 0), fp32 parameters, cudnn.benchmark on;
--math tf32 allows TF32 in cuBLAS and cuDNN, fp32 forbids it. The data (one batch per rank) is
generated once on the GPU. Each iteration (zero_grad, forward, loss, backward, step) is timed on
rank 0 between torch.cuda.synchronize() calls; the first --warmup iterations are discarded and
the median of the rest gives samples/s = global batch / median. The JSON written (one line):
{system, model, strategy, gpus, batch, math, median_s, samples_per_s, iterations, ...}.
"""

import argparse
import json
import os
import socket
import statistics
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

# NVLink multicast (NVLS) stays off on shared hosts; children inherit the environment.
os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")


def set_math(mode):
    tf32 = mode == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, args, port):
    world = args.gpus
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
        set_math(args.math)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                                rank=rank, world_size=world)
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)

    torch.manual_seed(args.seed)   # the same initial weights on every rank (DDP also broadcasts them)
    model = torch_models.build_model(args.model, attention=args.attention).to(device)
    if world > 1 and args.sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[rank] if cuda else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.0)

    local = args.batch // world
    g = torch.Generator().manual_seed(args.seed + 1 + rank)
    inputs, labels = torch_models.make_batch(args.model, local, device, generator=g)

    times, losses = [], []
    for _ in range(args.warmup + args.iterations):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch_models.loss_fn(model(*inputs), labels)
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(loss.detach())
    losses = [float(l) for l in losses]

    if args.profile and cuda:
        # One more iteration, profiled on rank 0 (every rank runs it: DDP all-reduces across them):
        # the kernels' CUDA time by name, beside ffc's --trace of the same model.
        import contextlib
        from torch.profiler import ProfilerActivity, profile
        ctx = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) if rank == 0 else contextlib.nullcontext()
        with ctx as prof:
            opt.zero_grad(set_to_none=True)
            loss = torch_models.loss_fn(model(*inputs), labels)
            loss.backward()
            opt.step()
            sync()
        if rank == 0:
            with open(args.profile + ".txt", "w") as f:
                f.write(prof.key_averages().table(sort_by="cuda_time_total", row_limit=60))
            prof.export_chrome_trace(args.profile + ".json")

    if rank == 0:
        timed = times[args.warmup:]
        med = statistics.median(timed)
        result = {
            "system": "pytorch",
            "model": args.model,
            "strategy": ("ddp+syncbn" if args.sync_bn else "ddp") if world > 1 else "eager",
            "gpus": world,
            "batch": args.batch,
            "math": args.math,
            "median_s": med,
            "samples_per_s": args.batch / med,
            "iterations": args.iterations,
            "warmup": args.warmup,
            "mean_s": statistics.fmean(timed),
            "min_s": min(timed),
            "max_s": max(timed),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "attention": args.attention if args.model == "transformer" else None,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        }
        if args.json:
            with open(args.json, "w") as f:
                f.write(json.dumps(result) + "\n")
        print(f"pytorch {args.model} gpus={world} batch={args.batch} math={args.math}: "
              f"median {med * 1e3:.2f} ms/iter, {args.batch / med:.1f} samples/s "
              f"(loss {losses[0]:.4f} -> {losses[-1]:.4f})", flush=True)
    if world > 1:
        import torch.distributed as dist
        dist.barrier(device_ids=[rank]) if cuda else dist.barrier()
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description="PyTorch side of bench/: time training of an example model")
    ap.add_argument("--model", required=True, choices=torch_models.MODELS)
    ap.add_argument("--batch", type=int, required=True, help="the global batch")
    ap.add_argument("--gpus", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=30, help="timed iterations")
    ap.add_argument("--warmup", type=int, default=10, help="iterations run first and discarded")
    ap.add_argument("--math", choices=("fp32", "tf32"), default="tf32")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--sync-bn", action="store_true",
                    help="N > 1: SyncBatchNorm (batch statistics over the global batch, as ffc's batch_norm)")
    ap.add_argument("--attention", choices=("math", "sdpa"), default="math",
                    help="transformer: explicit matmul-softmax-matmul as the .ff (math), or "
                         "F.scaled_dot_product_attention(scale=1)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: for testing this script")
    ap.add_argument("--json", help="write the result here (one JSON line)")
    ap.add_argument("--profile", metavar="PREFIX",
                    help="after the timing, profile one more iteration (rank 0): PREFIX.txt (kernels by CUDA "
                         "time) and PREFIX.json (Chrome trace)")
    args = ap.parse_args()

    if args.gpus < 1 or args.batch % args.gpus:
        ap.error(f"the global batch {args.batch} must split evenly over {args.gpus} GPUs")
    if args.iterations < 1 or args.warmup < 0:
        ap.error("--iterations must be at least 1 and --warmup at least 0")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("error: CUDA is not available")
        if torch.cuda.device_count() < args.gpus:
            sys.exit(f"error: {args.gpus} GPUs asked for, {torch.cuda.device_count()} visible")

    if args.gpus == 1:
        worker(0, args, None)
    else:
        import torch.multiprocessing as mp
        mp.spawn(worker, args=(args, free_port()), nprocs=args.gpus, join=True)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:   # a short last line for bench/run.sh's table, after the traceback
        traceback.print_exc()
        msg = str(e).strip().splitlines()
        sys.exit(f"error: {type(e).__name__}: {msg[-1] if msg else ''}"[:400])
