"""Speed (Task 1.5, GPU runners only): quantize_rowwise's throughput against the
reference kernel's, timed interleaved in the same run (grader/kit/speed.py).

Skipped on CPU-only machines: the interpreter's speed says nothing about a GPU
kernel. LLMLAB_SPEED_SMOKE=1 runs it on a tiny matrix, to test the machinery.
"""

import pytest
import torch

from grader.kit import speed
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE

pytestmark = [pytest.mark.task("1.5"), pytest.mark.gpu, pytest.mark.speed]
SHAPE = (16, 64) if speed.smoke_mode() else (8192, 8192)   # fp16: 128 MiB read per call
ITERATIONS = 1 if speed.smoke_mode() else 20


def rowwise_runs(quantize, rows, cols, iterations, device):
    """Quantize an fp16 [rows, cols] matrix `iterations` times, negating it in place
    before each call (no call can reuse an earlier result); a checksum of the last."""
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.float16 if device == "cuda" else torch.float32
    x = torch.randn(rows, cols, generator=generator, device=device, dtype=dtype)
    for _ in range(iterations):
        x.neg_()
        q, scale = quantize.quantize_rowwise(x)
    if device == "cuda":
        torch.cuda.synchronize()
    return [float(q.double().sum()), float(scale.double().sum()), list(q.shape)]


@pytest.mark.points(4)
def test_rowwise_kernel_throughput_against_the_reference(student, reference_worker, request):
    """quantize_rowwise on an [8192, 8192] fp16 matrix runs at >= 0.5x the reference
    kernel's throughput for full points (none below 0.1x), with the reference's output."""
    args = (*SHAPE, ITERATIONS, KERNEL_DEVICE)
    timings, mine, theirs = speed.compare(
        lambda: run_probe(student, rowwise_runs, *args),
        lambda: run_probe(reference_worker, rowwise_runs, *args))
    assert mine[2] == theirs[2], f"q has shape {mine[2]}, expected {theirs[2]}"
    # codes may differ by one at near-ties (SPEC §3.1): a few per million, not more
    assert abs(mine[0] - theirs[0]) <= 1e-4 * SHAPE[0] * SHAPE[1] + 1, \
        "the codes differ from the reference's: no speed points for a wrong kernel"
    assert abs(mine[1] - theirs[1]) <= 1e-3 * abs(theirs[1]) + 1e-6, \
        "the scales differ from the reference's: no speed points for a wrong kernel"
    speed.grant(request, speed.fraction(timings.ratio),
                timings.summary("quantize_rowwise, [8192, 8192] fp16"))
