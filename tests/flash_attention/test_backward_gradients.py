"""Hidden properties of the differentiable flash_attention (Task 4.3, SPEC §3.4).

Gradients are compared with autograd through float64 attention. The backward
must recompute score tiles from q, k, v, o and lse: no Tq×Tk tensor may be
created outside a Triton launch, in forward or backward (checked by watching
every torch op of the call; Tq, Tk >= 256 and Tk > 4·D as SPEC says).
"""

import pytest
import torch
from hypothesis import given, settings

from grader.kit.checks import assert_all, assert_tensor
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE
from tests.flash_attention.expect import (
    DTYPES,
    assert_forward_matches,
    assert_gradients_match,
    attention_cases,
    forbidden,
    forward_and_gradients,
    make_qkv,
    score_budget,
    traced_call,
)

pytestmark = pytest.mark.task("4.3")
points = pytest.mark.points


def upstream(q, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(q.shape, generator=g).to(q.dtype).to(q.device)


def check_gradients(student, q, k, v, causal, sm_scale, seed=0):
    do = upstream(q, seed)
    out = run_probe(student, forward_and_gradients, q, k, v, do, causal, sm_scale)
    assert_tensor(out["o"], dtype=q.dtype, shape=q.shape, what="o")
    grads = (out["dq"], out["dk"], out["dv"])
    for name, g in zip(("dq", "dk", "dv"), grads, strict=True):
        if g is None:
            raise AssertionError(f"{name} is None: flash_attention's output is not "
                                 "connected to its inputs in the autograd graph")
    assert_gradients_match(grads, q, k, v, do, causal=causal, sm_scale=sm_scale)
    return out


@points(1)
@settings(max_examples=10)
@given(case=attention_cases(max_t=24))
def test_flash_attention_returns_the_forward_output(student, case):
    """flash_attention(q, k, v) equals o of float64 attention (causal or not)."""
    q, k, v, causal, sm_scale = case
    o = student.flash_attention(q, k, v, causal=causal, sm_scale=sm_scale)
    _, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(4)
@settings(max_examples=12)
@given(case=attention_cases(max_t=40))
def test_gradients_equal_float64_autograd(student, case):
    """dq, dk, dv equal autograd through float64 attention: D in {16, 32, 64, 128},
    Tq != Tk, causal or not, fp32/fp16, given or default sm_scale."""
    q, k, v, causal, sm_scale = case
    check_gradients(student, q, k, v, causal, sm_scale, seed=q.shape[2])


@points(2)
@pytest.mark.parametrize("n_q, n_k", [(9, 4), (40, 17)], ids=str)
def test_gradients_of_rows_that_see_no_key_are_zero_not_nan(student, n_q, n_k):
    """Causal with Tq > Tk: the rows that see no key (lse = −inf) get dq = 0, and add
    nothing to dk, dv; every gradient is finite."""
    q, k, v = make_qkv((1, 2, n_q, 32), n_k, torch.float32, seed=n_q)
    out = check_gradients(student, q, k, v, True, None, seed=1)
    blind = n_q - n_k
    assert_all(out["dq"][:, :, :blind].cpu() == 0, "dq of rows that see no key", got=out["dq"])


@points(2)
@settings(max_examples=3)
@given(case=attention_cases(dims=(16,), min_t=129, max_t=200, batch_heads=((1, 1),)))
def test_gradients_over_several_tiles_with_tails(student, case):
    """Tq, Tk in 129..200 (several tiles of up to 128, with tails): gradients are exact."""
    q, k, v, causal, sm_scale = case
    check_gradients(student, q, k, v, causal, sm_scale, seed=7)


@points(3)
@pytest.mark.parametrize("n_q, n_k, causal", [(256, 256, False), (256, 320, True),
                                              (320, 256, True)], ids=str)
def test_no_score_sized_tensor_in_forward_or_backward(student, n_q, n_k, causal):
    """Forward and backward create no tensor of Tq×Tk scores or probabilities outside a
    Triton launch (at most max(4·(Tq+Tk)·D, 128²) elements), save none for backward, and
    never call scaled_dot_product_attention."""
    q, k, v = make_qkv((1, 1, n_q, 16), n_k, torch.float32, seed=n_q + n_k)
    seen = run_probe(student, traced_call, "flash_attention", q, k, v, upstream(q, 3), causal)
    calls = forbidden(seen["forward_ops"] + seen["backward_ops"])
    assert not calls, f"flash_attention called fused attention ops: {calls}"
    budget = score_budget(n_q, n_k, 16)
    assert seen["largest"] <= budget, (
        f"flash_attention (forward + backward) created a tensor of {seen['largest']} "
        f"elements (by aten.{seen['largest_op']}); Tq×Tk = {n_q * n_k}, allowed {budget}")


# ------------------------------------------------------------------ GPU only --
def peak_memory(module, q, k, v, do, causal):
    """Probe: peak CUDA memory of forward + backward beyond the inputs, after a warm-up
    call (the autotuner's timing buffers are not the student's)."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    module.flash_attention(q, k, v, causal=causal).backward(do)
    q.grad = k.grad = v.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    module.flash_attention(q, k, v, causal=causal).backward(do)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


@pytest.mark.gpu
@points(0)
@pytest.mark.parametrize("causal", [False, True])
def test_peak_memory_is_linear_in_the_sequence_length_on_the_gpu(student, causal):
    """On a GPU, forward + backward at T = 8192 need O(T·D) memory (o, lse, the
    gradients and a few T·D buffers), far below one T×T score matrix."""
    n, dim = 8192, 64
    q, k, v = make_qkv((1, 2, n, dim), n, torch.bfloat16, seed=5)
    do = upstream(q, 5)
    peak = run_probe(student, peak_memory, q, k, v, do, causal)
    scores_bytes = 2 * n * n * 2  # one bf16 [T, T] matrix per head, two heads
    td_bytes = 2 * n * dim * 4    # one fp32 [T, D] buffer per head
    assert peak <= 24 * td_bytes, (
        f"peak memory {peak / 2**20:.1f} MiB; one score matrix is {scores_bytes / 2**20:.0f} "
        f"MiB, the budget {24 * td_bytes / 2**20:.1f} MiB")


@pytest.mark.gpu
@points(0)
@pytest.mark.parametrize("dim", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_large_gradients_on_the_gpu(student, dtype, causal, dim):
    """On a GPU, gradients of long sequences (bf16 included) match float64 autograd."""
    q, k, v = make_qkv((1, 2, 1000, dim), 1537, dtype, seed=dim, device=KERNEL_DEVICE)
    check_gradients(student, q, k, v, causal, None, seed=11)
