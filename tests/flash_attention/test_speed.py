"""Speed (Task 4.6, GPU runners only): the forward kernel's throughput against the
reference's, timed interleaved in the same run (grader/kit/speed.py).

Skipped on CPU-only machines: the interpreter's speed says nothing about a GPU
kernel. LLMLAB_SPEED_SMOKE=1 runs it on tiny shapes, to test the machinery.
"""

import pytest
import torch

from grader.kit import speed
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE

pytestmark = [pytest.mark.task("4.6"), pytest.mark.gpu, pytest.mark.speed]
# [B, H, S, D]: fp16, 2k tokens, 64 heads of 64 in all: ~35 GFLOP a non-causal call
SHAPE = (1, 1, 32, 16) if speed.smoke_mode() else (4, 16, 2048, 64)
ITERATIONS = 1 if speed.smoke_mode() else 10


def forward_runs(flash, batch, heads, length, dim, iterations, device):
    """flash_attention_forward, non-causal then causal, `iterations` times each on fp16
    [B, H, S, D] inputs negated in place before each call; a checksum of the last."""
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32

    def fresh():
        return torch.randn(batch, heads, length, dim, generator=generator, device=device,
                           dtype=dtype)

    q, k, v = fresh(), fresh(), fresh()
    sums = []
    for causal in (False, True):
        for _ in range(iterations):
            q.neg_()
            o, lse = flash.flash_attention_forward(q, k, v, causal=causal)
        sums += [float(o.double().sum()), float(lse.double().sum())]
    if device == "cuda":
        torch.cuda.synchronize()
    return sums


@pytest.mark.points(4)
def test_forward_kernel_throughput_against_the_reference(student, reference_worker, request):
    """flash_attention_forward on fp16 [4, 16, 2048, 64], causal and not, runs at >= 0.5x
    the reference kernel's throughput for full points (none below 0.1x), with the
    reference's output."""
    args = (*SHAPE, ITERATIONS, KERNEL_DEVICE)
    timings, mine, theirs = speed.compare(
        lambda: run_probe(student, forward_runs, *args),
        lambda: run_probe(reference_worker, forward_runs, *args))
    for got, expected in zip(mine, theirs, strict=True):
        assert abs(got - expected) <= 1e-2 * (1 + abs(expected)), \
            "the output differs from the reference's: no speed points for a wrong kernel"
    speed.grant(request, speed.fraction(timings.ratio),
                timings.summary("flash_attention_forward, fp16 [4, 16, 2048, 64]"))
