"""Benchmark: the reference FlashAttention (Triton) against torch SDPA, same run.

Prints, never asserts. bf16 (--dtypes float16 bfloat16 for both), batch x heads =
16k tokens / S x 16 heads (a constant amount of work per row), D = 64 and 128,
S = 1k..16k, causal and not:
    fwd      the reference flash_attention_forward (Triton kernel)
    sdpa     torch.nn.functional.scaled_dot_product_attention, forward
    fwd+bwd  the reference flash_attention forward and backward (Triton kernels)
    sdpa f+b the same through SDPA's autograd
TFLOP/s count the matrix products only: forward 4·B·H·S²·D (halved when causal),
backward 2.5x the forward (five products instead of two), as FlashAttention reports.

    python benchmarks/bench_flash_attention.py            (needs a CUDA GPU)
    python benchmarks/bench_flash_attention.py --smoke    (CPU: runs tiny shapes once
                                                            through the interpreter)
    python benchmarks/bench_flash_attention.py --dtypes float16 bfloat16 --rep 50
                                                          (both dtypes, shorter timings)
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LENGTHS = [1024, 2048, 4096, 8192, 16384]
HEAD_DIMS = [64, 128]
TOKENS = 16384  # batch size = TOKENS // S, so every length does the same work per row
HEADS = 16
DTYPES = ["float16", "bfloat16", "float32"]


def load_reference():
    path = REPO / "reference" / "flash_attention" / "flash.py"
    spec = importlib.util.spec_from_file_location("reference_flash", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def flops(batch, heads, n, dim, causal, backward=False):
    f = 4 * batch * heads * n * n * dim * (0.5 if causal else 1.0)
    return f * 3.5 if backward else f  # forward + backward = 1 + 2.5 forwards


def smoke(dtypes: list[str]) -> int:
    """Run every code path once on tiny shapes (CPU interpreter): the script works."""
    import torch

    ref = load_reference()
    for name in dtypes:
        for causal in (False, True):
            q, k, v = (torch.randn(1, 2, n, 16, dtype=getattr(torch, name)).requires_grad_()
                       for n in (37, 45, 45))
            o, lse = ref.flash_attention_forward(q, k, v, causal=causal)
            ref.flash_attention(q, k, v, causal=causal).sum().backward()
            print(f"smoke {name} causal={causal}: o {list(o.shape)}, lse {list(lse.shape)}, "
                  f"|dq| {q.grad.float().norm():.3f} - ok")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every path")
    parser.add_argument("--lengths", type=int, nargs="*", default=LENGTHS)
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["bfloat16"])
    parser.add_argument("--rep", type=int, default=100,
                        help="milliseconds each do_bench measurement runs (warm-up: a quarter)")
    args = parser.parse_args()
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")
        return smoke(args.dtypes)
    import torch

    if not torch.cuda.is_available():
        print("bench_flash_attention: needs a CUDA GPU (try --smoke for a CPU run of the "
              "code paths; interpreter timings mean nothing)")
        return 0
    import torch.nn.functional as F
    import triton
    import triton.testing

    ref = load_reference()
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"triton {triton.__version__}")
    print("TFLOP/s of the matrix products; ratios are times vs SDPA, same run")
    print(f"{'D':>4} {'S':>6} {'causal':>6} {'dtype':>9} {'fwd':>7} {'sdpa':>7} {'x':>6} "
          f"{'fwd+bwd':>8} {'sdpa f+b':>9} {'x':>6}")
    bench = lambda fn: triton.testing.do_bench(fn, warmup=max(1, args.rep // 4), rep=args.rep)
    for dim, n, causal, name in itertools.product(HEAD_DIMS, args.lengths, (False, True),
                                                  args.dtypes):
        batch = max(1, TOKENS // n)
        g = torch.Generator(device="cuda").manual_seed(0)
        q, k, v = (torch.randn(batch, HEADS, n, dim, device="cuda", generator=g,
                               dtype=getattr(torch, name)) for _ in range(3))
        do = torch.randn_like(q)
        o, _ = ref.flash_attention_forward(q, k, v, causal=causal)
        o_sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        error = (o.float() - o_sdpa.float()).abs().max().item()
        assert error < 5e-2, f"reference and SDPA disagree by {error}"
        t_fwd = bench(lambda: ref.flash_attention_forward(q, k, v, causal=causal))
        t_sdpa = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

        def fwd_bwd(function):
            qg.grad = kg.grad = vg.grad = None
            function().backward(do)

        t_fb = bench(lambda: fwd_bwd(lambda: ref.flash_attention(qg, kg, vg, causal=causal)))
        t_sdpa_fb = bench(lambda: fwd_bwd(
            lambda: F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)))
        tf = lambda ms, f: f / ms / 1e9  # noqa: E731
        f1 = flops(batch, HEADS, n, dim, causal)
        f2 = flops(batch, HEADS, n, dim, causal, backward=True)
        print(f"{dim:>4} {n:>6} {str(causal):>6} {name:>9} {tf(t_fwd, f1):7.0f} "
              f"{tf(t_sdpa, f1):7.0f} {t_sdpa / t_fwd:5.2f}x {tf(t_fb, f2):8.0f} "
              f"{tf(t_sdpa_fb, f2):9.0f} {t_sdpa_fb / t_fb:5.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
