"""Benchmark: data-parallel step time, naive vs bucketed (reference) vs torch's DDP, same run.

Prints, never asserts. Every rank is a process on this machine (gloo over
loopback, or NCCL with one GPU per rank). One step = forward + backward +
gradient synchronisation + SGD step of the same MLP on the same data:
    naive     reference broadcast_parameters + all_reduce_gradients (one blocking
              all-reduce per parameter, after backward)
    bucketed  reference DDP (25 MB buckets, async all-reduce launched from hooks)
    torch     torch.nn.parallel.DistributedDataParallel (bucket_cap_mb=25)
The three run interleaved, round after round, so machine load hits them alike;
the table shows the median step time and ratios to torch's DDP.

    python benchmarks/bench_ddp.py                     (gloo, world sizes 2 and 4)
    python benchmarks/bench_ddp.py --world-sizes 2 --width 2048 --layers 8
    python benchmarks/bench_ddp.py --backend nccl --world-sizes 1 8   (one GPU per rank)
    python benchmarks/bench_ddp.py --smoke             (gloo, world sizes 1 and 2, a tiny
                                                        MLP, one step: measures nothing)
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def load_reference():
    path = REPO / "reference" / "ddp" / "ddp.py"
    spec = importlib.util.spec_from_file_location("reference_ddp", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_model(width: int, layers: int, device) -> nn.Module:
    torch.manual_seed(0)
    blocks = []
    for _ in range(layers):
        blocks += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*blocks, nn.Linear(width, 1)).to(device)


def rank_main(rank: int, args, port: int, queue) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda", rank) if args.backend == "nccl" else torch.device("cpu")
    if args.backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(args.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=args.world_size,
                            timeout=datetime.timedelta(seconds=120))
    ref = load_reference()
    nets = {name: make_model(args.width, args.layers, device)
            for name in ("naive", "bucketed", "torch")}
    ref.broadcast_parameters(nets["naive"])
    wrapped = {
        "naive": nets["naive"],
        "bucketed": ref.DDP(nets["bucketed"], bucket_size_mb=25.0),
        "torch": nn.parallel.DistributedDataParallel(nets["torch"], bucket_cap_mb=25.0),
    }
    opts = {name: torch.optim.SGD(net.parameters(), lr=1e-4) for name, net in nets.items()}
    g = torch.Generator(device="cpu").manual_seed(rank)
    x = torch.randn(args.batch, args.width, generator=g).to(device)
    y = torch.randn(args.batch, 1, generator=g).to(device)

    def step(name):
        opts[name].zero_grad(set_to_none=True)
        loss = ((wrapped[name](x) - y) ** 2).mean()
        loss.backward()
        if name == "naive":
            ref.all_reduce_gradients(nets["naive"])
        elif name == "bucketed":
            wrapped[name].finish_gradient_synchronization()
        opts[name].step()

    def sync():
        if args.backend == "nccl":
            torch.cuda.synchronize()
        dist.barrier()

    times = {name: [] for name in wrapped}
    for name in wrapped:  # warm-up
        for _ in range(2):
            step(name)
    for _ in range(args.rounds):
        for name in wrapped:
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)
    # the same averaged gradients on every rank: the three models stay equal
    same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in
               zip(nets["bucketed"].parameters(), nets["torch"].parameters(), strict=True))
    if rank == 0:
        queue.put({name: statistics.median(t) for name, t in times.items()} | {"same": same})
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    parser.add_argument("--world-sizes", type=int, nargs="+", default=None,
                        help="default: 2 4 (--smoke: 1 2)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--smoke", action="store_true",
                        help="gloo, a tiny MLP, one step: proves the script runs")
    args = parser.parse_args()
    if args.smoke:
        if args.backend != "gloo":
            parser.error("--smoke runs on CPUs, with gloo")
        args.width, args.layers, args.batch, args.steps, args.rounds = 64, 2, 4, 1, 1
    args.world_sizes = args.world_sizes or ([1, 2] if args.smoke else [2, 4])
    if args.backend == "nccl" and not torch.cuda.is_available():
        print("bench_ddp: --backend nccl needs CUDA GPUs")
        return 0
    params = sum(p.numel() for p in make_model(args.width, args.layers, "cpu").parameters())
    if args.smoke:
        print("SMOKE (CPU, one step a round: not a measurement)")
    print(f"torch {torch.__version__}, backend {args.backend}, {os.cpu_count()} CPUs, "
          f"{args.threads} torch thread(s) per rank")
    print(f"model: MLP {args.layers} x Linear({args.width}, {args.width}), {params / 1e6:.1f} M "
          f"parameters ({params * 4 / 2**20:.0f} MB of fp32 gradients), batch {args.batch} "
          f"per rank; median of {args.rounds} rounds x {args.steps} steps")
    print(f"{'ranks':>5} {'naive ms':>9} {'bucketed ms':>12} {'torch ms':>9} "
          f"{'naive/torch':>12} {'bucketed/torch':>15} {'same params':>12}")
    for world_size in args.world_sizes:
        if args.backend == "nccl" and world_size > torch.cuda.device_count():
            print(f"{world_size:>5}  skipped: only {torch.cuda.device_count()} GPU(s)")
            continue
        args.world_size = world_size
        ctx = mp.get_context("spawn")
        queue = ctx.SimpleQueue()
        mp.start_processes(rank_main, args=(args, free_port(), queue), nprocs=world_size,
                           start_method="spawn")
        r = queue.get()
        print(f"{world_size:>5} {r['naive'] * 1e3:9.1f} {r['bucketed'] * 1e3:12.1f} "
              f"{r['torch'] * 1e3:9.1f} {r['naive'] / r['torch']:11.2f}x "
              f"{r['bucketed'] / r['torch']:14.2f}x {str(r['same']):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
