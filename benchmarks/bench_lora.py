"""Benchmark: what a LoRA adapter costs at inference, unmerged and merged, same run.

Prints, never asserts. For each layer size, rank and dtype, the forward time of:
    base      the frozen nn.Linear alone
    lora      the reference LoRALinear, unmerged: base(x) + s * (x @ A.T) @ B.T
    naive     the same output forming B @ A on every call: x @ (W + s * B @ A).T
    merged    the reference LoRALinear after merge(): base(x) alone
Merging should cost nothing (merged ~ base); the unmerged bottleneck adds two
thin matmuls, forming B @ A adds a d_out x d_in matrix per call.

    python benchmarks/bench_lora.py        (CUDA if available, else a small CPU run)
    python benchmarks/bench_lora.py --smoke    (CPU, tiny shapes, one timed call each:
                                                proves the code runs, measures nothing)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def load_reference():
    path = REPO / "reference" / "lora" / "lora.py"
    spec = importlib.util.spec_from_file_location("reference_lora", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bench(fn, device: str, repeat: int) -> float:
    """Median milliseconds of fn()."""
    times = []
    for _ in range(repeat + 3):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return sorted(times[3:])[len(times[3:]) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every path")
    args = parser.parse_args()
    ref = load_reference()
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.smoke:
        cases = [(48, 64, 16, r, torch.float32) for r in (2, 4)]
        repeat, name = 1, "SMOKE (CPU, one timed call each: not a measurement)"
    elif device == "cuda":
        cases = [(4096, 4096, 2048, r, dt) for r in (8, 64)
                 for dt in (torch.float16, torch.bfloat16)]
        repeat, name = 50, torch.cuda.get_device_name(0)
    else:
        cases = [(1024, 1024, 256, r, torch.float32) for r in (8, 64)]
        repeat, name = 50, f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}, torch {torch.__version__}; milliseconds per forward (median)")
    print(f"{'d_out x d_in':>13} {'tokens':>7} {'r':>4} {'dtype':>9} {'base':>8} {'lora':>8} "
          f"{'naive':>8} {'merged':>8} {'lora/base':>10} {'merged/base':>12}")
    torch.manual_seed(0)
    for d_out, d_in, tokens, r, dtype in cases:
        base = nn.Linear(d_in, d_out, device=device, dtype=dtype)
        layer = ref.LoRALinear(base, r, alpha=2 * r).eval()
        with torch.no_grad():
            layer.lora_B.normal_(std=0.01)
            x = torch.randn(tokens, d_in, device=device, dtype=dtype)
            W, s = base.weight, layer.scaling
            t_base = bench(lambda: base(x), device, repeat)
            t_lora = bench(lambda: layer(x), device, repeat)
            t_naive = bench(lambda: x @ (W + s * layer.lora_B @ layer.lora_A).T + base.bias,
                            device, repeat)
            layer.merge()
            t_merged = bench(lambda: layer(x), device, repeat)
        print(f"{f'{d_out}x{d_in}':>13} {tokens:>7} {r:>4} {str(dtype)[6:]:>9} {t_base:8.3f} "
              f"{t_lora:8.3f} {t_naive:8.3f} {t_merged:8.3f} {t_lora / t_base:9.2f}x "
              f"{t_merged / t_base:11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
