"""Hidden properties of flash_attention_forward without a mask (Task 4.1, SPEC §3.4).

On CPU-only machines the kernel runs in Triton's interpreter: shapes stay tiny
(Tq, Tk <= 70) except the few tests that need several 128-wide tiles. Big
shapes and bf16 dots are behind the `gpu` marker.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_raises, assert_tensor
from grader.kit.kernels import assert_kernels_read_and_wrote, replayed_launches
from grader.kit.observe import call_and_inspect_inputs
from grader.kit.probes import run_probe
from grader.kit.strategies import KERNEL_DEVICE
from tests.flash_attention.expect import (
    CPU_DTYPES,
    DTYPES,
    HEAD_DIMS,
    assert_forward_matches,
    assert_output_matches,
    attention_cases,
    forbidden,
    make_qkv,
    score_budget,
    torch_attention,
    traced_call,
)

pytestmark = pytest.mark.task("4.1")
points = pytest.mark.points
NOT_CAUSAL = dict(causal=st.just(False))


# ------------------------------------------------------------ cheap first --
@points(1)
@pytest.mark.parametrize("n_keys", [1, 7, 40])
def test_a_query_of_zeros_averages_the_values_and_lse_is_log_tk(student, n_keys):
    """q = 0 scores 0 against every key: o = mean of v's rows, lse = ln(Tk) (natural log)."""
    _, k, v = make_qkv((1, 2, 3, 16), n_keys, torch.float32, seed=n_keys)
    q = torch.zeros(1, 2, 3, 16, device=KERNEL_DEVICE)
    o, lse = student.flash_attention_forward(q, k, v)
    assert_tensor(o, dtype=torch.float32, shape=(1, 2, 3, 16), what="o")
    assert_tensor(lse, dtype=torch.float32, shape=(1, 2, 3), what="lse")
    mean = v.double().mean(dim=2, keepdim=True).expand(1, 2, 3, 16).cpu()
    assert_all((o.cpu().double() - mean).abs() <= 1e-5 * (1 + mean.abs()),
               "o should be the mean of the values", got=o, expected=mean)
    assert_all((lse.cpu().double() - math.log(n_keys)).abs() <= 1e-5,
               f"lse should be ln(Tk) = {math.log(n_keys):.6f}", got=lse)


@points(2)
@pytest.mark.parametrize("n_q, n_k", [(256, 256), (256, 320)], ids=str)
def test_no_score_sized_tensor_and_no_torch_attention_in_the_forward(student, n_q, n_k):
    """No tensor of Tq×Tk scores is created outside the kernel (the largest allowed is
    max(4·(Tq+Tk)·D, 128²) elements), and no torch attention runs: no
    scaled_dot_product_attention, no torch matrix product or softmax."""
    q, k, v = make_qkv((1, 1, n_q, 16), n_k, torch.float32, seed=n_q + n_k)
    seen = run_probe(student, traced_call, "flash_attention_forward", q, k, v, None, False)
    calls = forbidden(seen["forward_ops"])
    assert not calls, f"flash_attention_forward called fused attention ops: {calls}"
    calls = torch_attention(seen["forward_ops"])
    assert not calls, (f"flash_attention_forward ran torch matrix products or softmax outside "
                       f"its kernel: {calls}")
    budget = score_budget(n_q, n_k, 16)
    assert seen["largest"] <= budget, (
        f"flash_attention_forward created a tensor of {seen['largest']} elements "
        f"(by aten.{seen['largest_op']}); Tq×Tk = {n_q * n_k}, allowed {budget}")


@points(4)
@given(case=attention_cases(causal=st.just(False)))
def test_output_and_lse_equal_float64_attention(student, case):
    """o = softmax(sm_scale·q kᵀ) v and lse = ln Σ exp(sm_scale·q kᵀ) for small random
    problems: D in {16, 32, 64, 128}, any Tq != Tk, fp32/fp16, given or default sm_scale."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(1)
@pytest.mark.parametrize("sm_scale", [0.03, 0.5, 2.0, -0.7])
def test_a_given_sm_scale_is_used(student, sm_scale):
    """sm_scale multiplies the scores (any finite value, negative too)."""
    q, k, v = make_qkv((1, 1, 20, 32), 33, torch.float32, seed=7)
    o, lse = student.flash_attention_forward(q, k, v, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=False, sm_scale=sm_scale,
                           what=f" (sm_scale={sm_scale})")


@points(1)
@pytest.mark.parametrize("dim", HEAD_DIMS)
def test_the_default_sm_scale_is_one_over_sqrt_d(student, dim):
    """sm_scale=None means 1/sqrt(D)."""
    q, k, v = make_qkv((1, 1, 9, dim), 21, torch.float32, seed=dim, spread=2.0)
    o, lse = student.flash_attention_forward(q, k, v)
    assert_forward_matches(o, lse, q, k, v, causal=False, sm_scale=1 / math.sqrt(dim),
                           what=f" (default sm_scale, D={dim})")


@points(2)
@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("magnitude", [100.0, 3000.0])
def test_scores_of_large_magnitude_stay_finite(student, dtype, magnitude):
    """Scores far beyond exp's range (|S| up to thousands, where a naive softmax gives
    inf/inf = nan) still give the exact o and lse: the running max is subtracted."""
    q, k, v = make_qkv((1, 2, 24, 16), 45, torch.float32, seed=int(magnitude))
    q = q * magnitude / 8  # |S| ~ magnitude with sm_scale = 1/4, D = 16
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    o, lse = student.flash_attention_forward(q, k, v)
    assert_forward_matches(o, lse, q, k, v, causal=False, sm_scale=None,
                           what=f" (|S| ~ {magnitude:g})")


@points(2)
@settings(max_examples=4)
@given(case=attention_cases(dims=(16,), min_t=129, max_t=260, batch_heads=((1, 1),),
                            causal=st.just(False)))
def test_several_tiles_of_queries_and_keys_with_tails(student, case):
    """Tq, Tk in 129..260 (more than two tiles of up to 128, not a multiple of the tile):
    the online softmax across tiles and the tail masks are exact."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(1)
@settings(max_examples=10)
@given(case=attention_cases(max_t=20, causal=st.just(False)))
def test_outputs_have_the_right_shape_dtype_and_device(student, case):
    """o is [B, H, Tq, D] in q's dtype on q's device; lse is [B, H, Tq] float32."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_tensor(o, dtype=q.dtype, shape=q.shape, device=q.device, what="o")
    assert_tensor(lse, dtype=torch.float32, shape=q.shape[:3], device=q.device, what="lse")


@points(1)
def test_the_triton_kernel_computes_o_from_q_k_v(student):
    """flash_attention_forward's Triton kernel reads q, k and v and writes o: its launches,
    run again without your Python on other values written into q, k and v, leave the
    attention of those values in o."""
    q, k, v = make_qkv((2, 3, 37, 16), 45, torch.float32, seed=1)
    new = make_qkv((2, 3, 37, 16), 45, torch.float32, seed=2)
    report = run_probe(student, replayed_launches, "flash_attention_forward", [q, k, v], {}, new)
    assert_kernels_read_and_wrote(report, ["q", "k", "v"], ["o"], "flash_attention_forward")
    assert_output_matches(report["replayed"][0], *new, causal=False, sm_scale=None,
                          what=" left by the kernel launches replayed on new q, k, v")


@points(1)
def test_inputs_are_not_modified(student):
    """q, k and v are left unchanged."""
    q, k, v = make_qkv((1, 2, 10, 16), 14, torch.float16, seed=2)
    _, after = call_and_inspect_inputs(student, "flash_attention_forward", q, k, v)
    for name, before, now in zip("qkv", (q, k, v), after, strict=True):
        assert torch.equal(now.cpu(), before.cpu()), f"{name} was modified in place"


# ------------------------------------------------------------- bad inputs --
def _bad_case(case):
    q, k, v = make_qkv((1, 2, 5, 16), 6, torch.float32, seed=3)
    return {
        "q 3-D": (q[0], k, v),
        "k D differs": (q, torch.zeros(1, 2, 6, 32, device=q.device), v),
        "v shape differs": (q, k, v[:, :, :5]),
        "H differs": (q, k[:, :1], v[:, :1]),
        "D=24": tuple(t[..., :8].repeat(1, 1, 1, 3) for t in (q, k, v)),
        "D=256": tuple(t.repeat(1, 1, 1, 16) for t in (q, k, v)),
        "fp64": (q.double(), k.double(), v.double()),
        "dtypes differ": (q, k.half(), v),
        "int32": tuple(t.int() for t in (q, k, v)),
        "Tk=0": (q, k[:, :, :0], v[:, :, :0]),
    }[case]


@points(1)
@pytest.mark.parametrize("case", ["q 3-D", "k D differs", "v shape differs", "H differs",
                                  "D=24", "D=256", "fp64", "dtypes differ", "int32", "Tk=0"])
def test_unsupported_inputs_raise_value_error(student, case):
    """Wrong ranks, mismatched shapes, unsupported head dims or dtypes, empty K: ValueError."""
    assert_raises(ValueError, student.flash_attention_forward, *_bad_case(case),
                  what=f"inputs with {case}")


# ------------------------------------------------------------------ GPU only --
@pytest.mark.gpu
@points(0)
@pytest.mark.parametrize("dim", [64, 128])
@pytest.mark.parametrize("n_q, n_k", [(1024, 1024), (1000, 2049), (2047, 513)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_large_problems_on_the_gpu(student, dtype, n_q, n_k, dim):
    """On a GPU, long sequences in every dtype (bf16 included) match float64 attention."""
    q, k, v = make_qkv((2, 3, n_q, dim), n_k, dtype, seed=n_q + dim)
    o, lse = student.flash_attention_forward(q, k, v)
    assert_forward_matches(o, lse, q, k, v, causal=False, sm_scale=None)
