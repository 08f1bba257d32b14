"""Benchmark: the reference row-wise int8 quantizer (Triton) against torch, same run.

Prints, never asserts. For each shape and dtype:
    triton   the reference quantize_rowwise: kernel + the finite check (a host sync)
    kernel   the same kernel launch alone (what a fused pipeline would pay)
    eager    the reference absmax_quantize(x, dim=1) in plain torch (several kernels)
    compile  torch.compile of the same eager function (one fused kernel, if it works)
    copy     x.copy_() of the same bytes: a practical ceiling for a memory-bound kernel
Bandwidth counts the bytes a perfect kernel moves: read x once, write q and scale.

    python benchmarks/bench_quantize.py            (needs a CUDA GPU)
    python benchmarks/bench_quantize.py --shapes 4096x4096 --dtypes bfloat16 --rep 50
    python benchmarks/bench_quantize.py --smoke    (CPU: tiny shapes once through the
                                                    interpreter, no compile; numbers mean nothing)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPES = ["4096x4096", "8192x8192", "16384x1024", "65536x256", "1024x65536", "8x1048576"]
SMOKE_SHAPES = ["37x50", "3x130"]
DTYPES = ["float16", "bfloat16", "float32"]


def load_reference():
    path = REPO / "reference" / "quantization" / "quantize.py"
    spec = importlib.util.spec_from_file_location("reference_quantize", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile re-imports the module it traces
    spec.loader.exec_module(module)
    return module


def shape(text: str) -> tuple[int, int]:
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def once(fn) -> float:
    """Milliseconds of one call: the --smoke timer (it proves the code runs, nothing more)."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every path")
    parser.add_argument("--shapes", nargs="+", type=shape, default=None, metavar="ROWSxCOLS")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=DTYPES)
    parser.add_argument("--rep", type=int, default=100,
                        help="milliseconds each do_bench measurement runs (warm-up: a quarter)")
    args = parser.parse_args()
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # read when triton is imported
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("bench_quantize: needs a CUDA GPU (try --smoke for a CPU run of the code paths; "
              "Triton's interpreter timings mean nothing)")
        return 0
    import triton.testing

    device = "cpu" if args.smoke else "cuda"
    shapes = args.shapes or [shape(s) for s in (SMOKE_SHAPES if args.smoke else SHAPES)]
    ref = load_reference()
    eager = lambda x: ref.absmax_quantize(x, dim=1)
    if args.smoke:  # no torch.compile: on a CPU it takes longer than the whole smoke run
        bench, compiled = once, None
        name = "SMOKE (CPU, interpreter, one call each: not a measurement)"
    else:
        bench = lambda fn: triton.testing.do_bench(fn, warmup=max(1, args.rep // 4),
                                                   rep=args.rep)
        name = torch.cuda.get_device_name(0)
        try:
            compiled = torch.compile(eager)
        except Exception:  # noqa: BLE001 - report and go on without it
            compiled = None
    print(f"device: {name}, torch {torch.__version__}, triton {triton.__version__}")
    print("GB/s counts x read once, q and scale written once; ratios are times, same run")
    print(f"{'shape':>16} {'dtype':>9} {'triton':>8} {'kernel':>8} {'eager':>8} {'compile':>8} "
          f"{'copy':>8} {'vs eager':>9} {'vs compile':>11} {'kernel/copy':>12}")
    for rows_cols in shapes:
        for dtype in (getattr(torch, d) for d in args.dtypes):
            x = (torch.randn(rows_cols, device=device) * 3).to(dtype)
            q, scale = ref.quantize_rowwise(x)
            q_eager, _ = eager(x)
            assert torch.equal(q, q_eager), "kernel and eager disagree"
            moved = x.numel() * (x.element_size() + 1) + 4 * x.shape[0]
            t_triton = bench(lambda: ref.quantize_rowwise(x))
            t_kernel = bench(lambda: ref._launch_quantize_rows(x))
            t_eager = bench(lambda: eager(x))
            t_compile = float("nan")
            if compiled is not None:
                try:
                    compiled(x)
                    t_compile = bench(lambda: compiled(x))
                except Exception as error:  # noqa: BLE001
                    print(f"torch.compile unavailable: {type(error).__name__}: "
                          f"{str(error)[:200]}")
                    compiled = None
            y = torch.empty_like(x)
            t_copy = bench(lambda: y.copy_(x))
            copy_moved = 2 * x.numel() * x.element_size()
            gbs = lambda ms, nbytes=moved: nbytes / ms / 1e6
            print(f"{str(rows_cols):>16} {str(dtype)[6:]:>9} {gbs(t_triton):8.0f} "
                  f"{gbs(t_kernel):8.0f} {gbs(t_eager):8.0f} {gbs(t_compile):8.0f} "
                  f"{gbs(t_copy, copy_moved):8.0f} {t_eager / t_triton:8.2f}x "
                  f"{t_compile / t_triton:10.2f}x "
                  f"{gbs(t_kernel) / gbs(t_copy, copy_moved):11.0%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
