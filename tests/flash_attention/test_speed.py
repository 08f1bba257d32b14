"""Speed (Task 4.6, GPU runners only): the forward kernel's throughput against the
reference's, timed interleaved in the same run (grader/kit/speed.py): fresh secret
inputs for every call, every call's output checked against the reference's.

Skipped on CPU-only machines: the interpreter's speed says nothing about a GPU
kernel. LLMLAB_SPEED_SMOKE=1 runs it on tiny shapes, to test the machinery.
"""

import pytest
import torch

from grader.kit import speed
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE

pytestmark = [pytest.mark.task("4.6"), pytest.mark.gpu, pytest.mark.speed]
# [B, H, S, D]: fp16, 2k tokens, 64 heads of 64 in all: ~69 GFLOP a non-causal call
SHAPE = (1, 1, 32, 16) if speed.smoke_mode() else (4, 16, 2048, 64)
CALLS = 4 if speed.smoke_mode() else 20   # per request, non-causal and causal in turn
#: Relative and absolute error an fp16 kernel may have, root-mean-square over a digest
#: (fp16 rounding of P and o is ~1e-3, tests/flash_attention/tolerances.py): ~10x room.
O_RTOL, O_ATOL = 1e-2, 1e-3
LSE_RTOL, LSE_ATOL = 1e-3, 1e-3


def call_floor_s(peak, causal):
    """The least time of one call: q, k, v read and o written (fp16), lse written
    (float32); 4·B·H·S²·D FLOPs (QKᵀ and PV), about half of them when causal."""
    batch, heads, length, dim = SHAPE
    bytes_moved = 4 * batch * heads * length * dim * 2 + batch * heads * length * 4
    pairs = length * (length + 1) // 2 if causal else length * length
    return speed.floor_s(peak, bytes_moved, 4 * batch * heads * pairs * dim)


def forward_digest(o, lse, w_o, w_lse):
    """One call's output, digested (shapes checked first): for o and for lse,

        Σ w ⊙ out,   ‖w ⊙ out‖₂,   ‖w‖₂       w float32 in [-1, 1), drawn per request

    Weights of either sign: rounding errors cancel like the signal does, so the
    tolerance is relative to ‖w ⊙ out‖₂ (the digest's typical size). float64 [6]."""
    if type(o) is not torch.Tensor or type(lse) is not torch.Tensor:
        raise TypeError("flash_attention_forward must return two plain torch.Tensors")
    if tuple(o.shape) != tuple(w_o.shape) or tuple(lse.shape) != tuple(w_lse.shape):
        raise ValueError(f"o must be {list(w_o.shape)} and lse {list(w_lse.shape)}, got "
                         f"{list(o.shape)} and {list(lse.shape)}")
    sums = []
    for out, w in ((o, w_o), (lse, w_lse)):
        weighted = out.float() * w
        sums += [weighted.double().sum(), torch.linalg.vector_norm(weighted.double()),
                 torch.linalg.vector_norm(w.double())]
    return torch.stack(sums)


def forward_digests(flash, seeds, weight_seed, batch, heads, length, dim, device, baseline):
    """flash_attention_forward once per seed (non-causal, causal, non-causal, ...), each
    time on fresh q, k, v [B, H, S, D] drawn from that seed (fp16 on a GPU), each output
    digested in this request; the device is synchronised at the end. `baseline`: empty
    outputs instead of the kernel's (the reference worker's measure of making inputs and
    digests). A digest per seed."""
    weights = torch.Generator(device=device).manual_seed(weight_seed)
    w_o = torch.rand(batch, heads, length, dim, generator=weights, device=device) * 2 - 1
    w_lse = torch.rand(batch, heads, length, generator=weights, device=device) * 2 - 1
    dtype = torch.float16 if device == "cuda" else torch.float32
    digests = []
    for index, seed in enumerate(seeds):
        generator = torch.Generator(device=device).manual_seed(seed)
        q, k, v = (torch.randn(batch, heads, length, dim, generator=generator, device=device,
                               dtype=dtype) for _ in range(3))
        if baseline:
            o = torch.empty_like(q)
            lse = torch.empty(batch, heads, length, device=device)
        else:
            o, lse = flash.flash_attention_forward(q, k, v, causal=index % 2 == 1)
        digests.append(forward_digest(o, lse, w_o, w_lse))
    if device == "cuda":
        torch.cuda.synchronize()
    return torch.stack(digests).tolist()


def difference(mine, theirs) -> str | None:
    """Why the student's digests of one request are not the reference's, or None."""
    for call, (got, expected) in enumerate(zip(mine, theirs, strict=True), 1):
        for what, at, rtol, atol in (("o", 0, O_RTOL, O_ATOL), ("lse", 3, LSE_RTOL, LSE_ATOL)):
            allowed = rtol * expected[at + 1] + atol * expected[at + 2]
            if not abs(got[at] - expected[at]) <= allowed:
                return f"call {call} of a request: {what} differs from the reference's"
    return None


def run(worker, baseline):
    """A speed.compare runner: one request of the probe to `worker`."""
    return lambda request: run_probe(worker, forward_digests, list(request.seeds),
                                     request.weight_seed, *SHAPE, KERNEL_DEVICE, baseline)


@pytest.mark.points(4)
def test_forward_kernel_throughput_against_the_reference(student, reference_worker, request):
    """flash_attention_forward on fp16 [4, 16, 2048, 64], causal and not, runs at >= 0.5x
    the reference kernel's throughput for full points (none below 0.1x), with the
    reference's output on every call."""
    timings, replies = speed.compare(run(student, False), run(reference_worker, False),
                                     run(reference_worker, True), CALLS)
    for mine, theirs in replies:
        problem = difference(mine, theirs)
        assert problem is None, (f"{problem} on the same fresh inputs: no speed points for a "
                                 "wrong kernel (every call is checked)")
    device = speed.device_name(KERNEL_DEVICE)
    peak = speed.peak_of(device)
    floor = sum(call_floor_s(peak, index % 2 == 1) for index in range(CALLS))
    speed.grant(request, *speed.verdict(
        timings, floor, "flash_attention_forward, fp16 [4, 16, 2048, 64]", device))
