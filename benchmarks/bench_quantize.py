"""Benchmark: the reference row-wise int8 quantizer (Triton) against torch, same run.

Prints, never asserts. For each shape and dtype:
    triton   the reference quantize_rowwise: kernel + the finite check (a host sync)
    kernel   the same kernel launch alone (what a fused pipeline would pay)
    eager    the reference absmax_quantize(x, dim=1) in plain torch (several kernels)
    compile  torch.compile of the same eager function (one fused kernel, if it works)
    copy     x.copy_() of the same bytes: a practical ceiling for a memory-bound kernel
Bandwidth counts the bytes a perfect kernel moves: read x once, write q and scale.

    python benchmarks/bench_quantize.py            (needs a CUDA GPU)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHAPES = [(4096, 4096), (8192, 8192), (16384, 1024), (65536, 256), (1024, 65536), (8, 1 << 20)]
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


def load_reference():
    path = REPO / "reference" / "quantization" / "quantize.py"
    spec = importlib.util.spec_from_file_location("reference_quantize", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile re-imports the module it traces
    spec.loader.exec_module(module)
    return module


def main() -> int:
    if not torch.cuda.is_available():
        print("bench_quantize: needs a CUDA GPU (Triton's interpreter timings mean nothing)")
        return 0
    import triton.testing

    ref = load_reference()
    eager = lambda x: ref.absmax_quantize(x, dim=1)
    try:
        compiled = torch.compile(eager)
    except Exception:  # noqa: BLE001 - report and go on without it
        compiled = None
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"triton {triton.__version__}")
    print("GB/s counts x read once, q and scale written once; ratios are times, same run")
    print(f"{'shape':>16} {'dtype':>9} {'triton':>8} {'kernel':>8} {'eager':>8} {'compile':>8} "
          f"{'copy':>8} {'vs eager':>9} {'vs compile':>11} {'kernel/copy':>12}")
    for shape in SHAPES:
        for dtype in DTYPES:
            x = (torch.randn(shape, device="cuda") * 3).to(dtype)
            q, scale = ref.quantize_rowwise(x)
            q_eager, _ = eager(x)
            assert torch.equal(q, q_eager), "kernel and eager disagree"
            moved = x.numel() * (x.element_size() + 1) + 4 * x.shape[0]
            t_triton = triton.testing.do_bench(lambda: ref.quantize_rowwise(x))
            t_kernel = triton.testing.do_bench(lambda: ref._launch_quantize_rows(x))
            t_eager = triton.testing.do_bench(lambda: eager(x))
            t_compile = float("nan")
            if compiled is not None:
                try:
                    compiled(x)
                    t_compile = triton.testing.do_bench(lambda: compiled(x))
                except Exception as error:  # noqa: BLE001
                    print(f"torch.compile unavailable: {type(error).__name__}: "
                          f"{str(error)[:200]}")
                    compiled = None
            y = torch.empty_like(x)
            t_copy = triton.testing.do_bench(lambda: y.copy_(x))
            copy_moved = 2 * x.numel() * x.element_size()
            gbs = lambda ms, nbytes=moved: nbytes / ms / 1e6
            print(f"{str(shape):>16} {str(dtype)[6:]:>9} {gbs(t_triton):8.0f} "
                  f"{gbs(t_kernel):8.0f} {gbs(t_eager):8.0f} {gbs(t_compile):8.0f} "
                  f"{gbs(t_copy, copy_moved):8.0f} {t_eager / t_triton:8.2f}x "
                  f"{t_compile / t_triton:10.2f}x "
                  f"{gbs(t_kernel) / gbs(t_copy, copy_moved):11.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
