"""Benchmark: greedy decoding with and without the reference KV cache, same run.

Prints, never asserts. For each number of new tokens n (from a 1-token prompt):
    cached     tokens/s of model.generate(..., use_cache=True): one prefill, then
               one single-token forward per step (O(n) projections per sequence)
    uncached   tokens/s of model.generate(..., use_cache=False): every step runs
               the whole sequence again (O(n^2) projections per sequence)
    speedup    cached over uncached tokens/s
    ms/token   average time per new token; cached stays roughly flat as n grows,
               uncached grows about linearly with n
The model is the assignment's TinyTransformer, made larger (see CONFIG), with
the reference cache.py; it runs on the CPU (or CUDA with --device cuda).

    python benchmarks/bench_kv_cache.py [--device cpu|cuda] [--lengths 16 32 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
LENGTHS = [16, 32, 64, 128, 256]


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def machine(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(line.split(":", 1)[1].strip() for line in lines
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {torch.get_num_threads()} torch threads"


def tokens_per_second(model, net, prompt, n, use_cache, device) -> float:
    best = float("inf")
    for _ in range(2):  # best of two: the machine may be shared
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model.generate(net, prompt, n, use_cache=use_cache)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_kv_cache: --device cuda needs a CUDA GPU")
        return 0

    cache = load("reference_kv_cache", REPO / "reference" / "kv_cache" / "cache.py")
    model = load("kv_cache_model", REPO / "assignments" / "kv_cache" / "model.py")
    config = model.Config(vocab_size=512, d_model=128, n_layers=4, n_heads=8, n_kv_heads=2,
                          d_ff=384, max_seq_len=max(args.lengths) + 1)
    net = model.TinyTransformer(config, cache, seed=0).to(args.device)
    prompt = torch.tensor([[1]], device=args.device)

    # The two must agree before their speeds mean anything.
    a = model.generate(net, prompt, 16, use_cache=True)
    b = model.generate(net, prompt, 16, use_cache=False)
    assert torch.equal(a, b), "cached and uncached generation disagree"

    print(f"device: {machine(args.device)}; torch {torch.__version__}")
    print(f"model: {config.n_layers} layers, d_model {config.d_model}, {config.n_heads} heads, "
          f"{config.n_kv_heads} kv heads, fp32, batch 1, prompt of 1 token")
    print(f"{'new tokens':>10} {'cached tok/s':>13} {'uncached tok/s':>15} {'speedup':>8} "
          f"{'cached ms/tok':>14} {'uncached ms/tok':>16}")
    for n in args.lengths:
        cached = tokens_per_second(model, net, prompt, n, True, args.device)
        uncached = tokens_per_second(model, net, prompt, n, False, args.device)
        print(f"{n:>10} {cached:>13.0f} {uncached:>15.0f} {cached / uncached:>7.1f}x "
              f"{1e3 / cached:>14.2f} {1e3 / uncached:>16.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
