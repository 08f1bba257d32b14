"""Speed (Task 1.5, GPU runners only): quantize_rowwise's throughput against the
reference kernel's, timed interleaved in the same run (grader/kit/speed.py): fresh
secret inputs for every call, every call's output checked against the reference's.

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
CALLS = 3 if speed.smoke_mode() else 20                      # per request, each on fresh x
#: What one call must move at least: x read (fp16 on a GPU), q (int8) and scale written.
BYTES = SHAPE[0] * SHAPE[1] * (2 + 1) + SHAPE[0] * 4
#: A code may differ by one at a near-tie (SPEC §3.1): a few per million, 1e-4 allowed.
NEAR_TIES = 1e-4
#: Each scale within 1 ulp of absmax / 127 (2^-23 relative), with room.
SCALE_RTOL = 1e-5


def rowwise_digest(q, scale, a, b, c):
    """One call's output, digested (shapes checked first):

        codes  = Σ_j b_j Σ_i q_ij + Σ_i a_i Σ_j q_ij     exact integer sums of the codes
        scales = Σ_i c_i scale_i,  magnitude Σ_i |c_i scale_i|

    a [rows], b [cols], c [rows] float64 in [-1, 1). A code off by one moves `codes` by
    |a_i| + |b_j| < 2. Returns float64 [3]: codes, scales, magnitude."""
    rows, cols = a.numel(), b.numel()
    if type(q) is not torch.Tensor or type(scale) is not torch.Tensor:
        raise TypeError("quantize_rowwise must return two plain torch.Tensors (q, scale)")
    if q.dtype != torch.int8 or tuple(q.shape) != (rows, cols):
        raise ValueError(f"q must be int8 [{rows}, {cols}], got {q.dtype} {list(q.shape)}")
    if scale.dtype != torch.float32 or tuple(scale.shape) != (rows, 1):
        raise ValueError(f"scale must be float32 [{rows}, 1], got {scale.dtype} "
                         f"{list(scale.shape)}")
    codes = ((q.sum(dim=0, dtype=torch.int64).double() * b).sum()
             + (q.sum(dim=1, dtype=torch.int64).double() * a).sum())
    weighted = scale.double().flatten() * c
    return torch.stack([codes, weighted.sum(), weighted.abs().sum()])


def rowwise_digests(quantize, seeds, weight_seed, rows, cols, device, baseline):
    """quantize_rowwise once per seed, each time on a fresh [rows, cols] matrix drawn from
    that seed (fp16 on a GPU), each output digested in this request; the device is
    synchronised at the end. `baseline`: empty outputs instead of the kernel's (the
    reference worker's measure of making inputs and digests). A digest per seed."""
    weights = torch.Generator(device=device).manual_seed(weight_seed)
    a = torch.rand(rows, generator=weights, device=device, dtype=torch.float64) * 2 - 1
    b = torch.rand(cols, generator=weights, device=device, dtype=torch.float64) * 2 - 1
    c = torch.rand(rows, generator=weights, device=device, dtype=torch.float64) * 2 - 1
    dtype = torch.float16 if device == "cuda" else torch.float32
    digests = []
    for seed in seeds:
        generator = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(rows, cols, generator=generator, device=device, dtype=dtype)
        if baseline:
            q = torch.empty(rows, cols, dtype=torch.int8, device=device)
            scale = torch.empty(rows, 1, dtype=torch.float32, device=device)
        else:
            q, scale = quantize.quantize_rowwise(x)
        digests.append(rowwise_digest(q, scale, a, b, c))
    if device == "cuda":
        torch.cuda.synchronize()
    return torch.stack(digests).tolist()


def difference(mine, theirs) -> str | None:
    """Why the student's digests of one request are not the reference's, or None."""
    codes_atol = 2 * NEAR_TIES * SHAPE[0] * SHAPE[1] + 1
    for call, (got, expected) in enumerate(zip(mine, theirs, strict=True), 1):
        if not abs(got[0] - expected[0]) <= codes_atol:
            return f"call {call} of a request: the codes differ from the reference's"
        if not abs(got[1] - expected[1]) <= SCALE_RTOL * expected[2] + 1e-30:
            return f"call {call} of a request: the scales differ from the reference's"
    return None


def run(worker, baseline):
    """A speed.compare runner: one request of the probe to `worker`."""
    return lambda request: run_probe(worker, rowwise_digests, list(request.seeds),
                                     request.weight_seed, *SHAPE, KERNEL_DEVICE, baseline)


@pytest.mark.points(4)
def test_rowwise_kernel_throughput_against_the_reference(student, reference_worker, request):
    """quantize_rowwise on an [8192, 8192] fp16 matrix runs at >= 0.5x the reference
    kernel's throughput for full points (none below 0.1x), with the reference's output
    on every call."""
    timings, replies = speed.compare(run(student, False), run(reference_worker, False),
                                     run(reference_worker, True), CALLS)
    for mine, theirs in replies:
        problem = difference(mine, theirs)
        assert problem is None, (f"{problem} on the same fresh input: no speed points for a "
                                 "wrong kernel (every call is checked)")
    device = speed.device_name(KERNEL_DEVICE)
    floor = CALLS * speed.floor_s(speed.peak_of(device), BYTES, 0)
    speed.grant(request, *speed.verdict(timings, floor, "quantize_rowwise, [8192, 8192] fp16",
                                        device))
