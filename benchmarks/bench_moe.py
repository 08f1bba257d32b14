"""Benchmark: the reference MoELayer (dispatch and combine) against the two naive layers.

Prints, never asserts. For each configuration (T tokens, E experts, k per token):
    dispatch   the reference MoELayer.forward: one call per expert on its T*k/E rows
    dense      every expert on every token, masked by the dense gate (T*E rows)
    loop       a Python loop over tokens and slots (T*k calls of one row each)
All three compute the same y (checked here); timings are the median of a few runs,
forward only, float32, on CUDA when available, else on the CPU.

    python benchmarks/bench_moe.py
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [  # (T, d_model, d_ff, E, k)
    (512, 256, 1024, 8, 2),
    (2048, 256, 1024, 8, 2),
    (2048, 256, 512, 32, 2),
]
LOOP_MAX_TOKENS = 512  # the per-token loop takes seconds beyond this


def load_reference():
    sys.path.insert(0, str(REPO / "assignments" / "moe"))  # experts.py, the provided Expert
    path = REPO / "reference" / "moe" / "moe.py"
    spec = importlib.util.spec_from_file_location("reference_moe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dense(layer, x):
    weights, indices, _ = layer.router(x)
    gates = torch.zeros(x.shape[0], len(layer.experts), device=x.device)
    gates = gates.scatter(1, indices, weights)
    return sum(gates[:, e:e + 1] * expert(x) for e, expert in enumerate(layer.experts))


def loop(layer, x):
    weights, indices, _ = layer.router(x)
    rows = []
    for t in range(x.shape[0]):
        rows.append(sum(weights[t, j] * layer.experts[int(indices[t, j])](x[t:t + 1])
                        for j in range(indices.shape[1])))
    return torch.cat(rows)


def timed(fn, device, repeats=5):
    fn()  # warm-up: allocator, first-call dispatch
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> int:
    moe = load_reference()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'T':>6} {'d':>5} {'d_ff':>5} {'E':>3} {'k':>2} | "
          f"{'dispatch ms':>11} {'dense ms':>9} {'loop ms':>9}")
    for n_tokens, d_model, d_ff, n_experts, k in CONFIGS:
        layer = moe.MoELayer(d_model, d_ff, n_experts, k).to(device).eval()
        x = torch.randn(n_tokens, d_model, device=device)
        with torch.no_grad():
            y = layer(x)[0]
            err = (dense(layer, x) - y).abs().max().item()
            assert err < 1e-4, f"dense differs by {err}"
            t_dispatch = timed(lambda: layer(x), device)
            t_dense = timed(lambda: dense(layer, x), device)
            t_loop = (f"{timed(lambda: loop(layer, x), device, repeats=1):9.1f}"
                      if n_tokens <= LOOP_MAX_TOKENS else f"{'-':>9}")
        print(f"{n_tokens:>6} {d_model:>5} {d_ff:>5} {n_experts:>3} {k:>2} | "
              f"{t_dispatch:11.2f} {t_dense:9.2f} {t_loop}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
