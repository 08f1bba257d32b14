"""Hidden properties of causal_attention (Task 3.2, SPEC §3.3): bottom-right causal, GQA."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_equal, assert_raises, assert_tensor
from grader.kit.observe import call_and_inspect_inputs
from tests.kv_cache.oracle import assert_attention_close, naive_attention

pytestmark = pytest.mark.task("3.2")
points = pytest.mark.points
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
GQA_RATIOS = (1, 2, 4, 8)


def qkv(batch, heads, kv_heads, t_q, t_k, dim, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, t_q, dim, generator=g).to(dtype)
    k = torch.randn(batch, kv_heads, t_k, dim, generator=g).to(dtype)
    v = torch.randn(batch, kv_heads, t_k, dim, generator=g).to(dtype)
    return q, k, v


@st.composite
def attention_inputs(draw, t_q=None):
    """q [B, H, Tq, D], k/v [B, H_kv, Tk, D] with H = ratio * H_kv, 1 <= Tq <= Tk."""
    ratio = draw(st.sampled_from(GQA_RATIOS))
    kv_heads = draw(st.integers(1, 3))
    batch = draw(st.integers(1, 2))
    t_k = draw(st.integers(1, 10))
    tq = t_q if t_q is not None else draw(st.integers(1, t_k))
    dim = draw(st.sampled_from([2, 4, 8, 16]))
    dtype = draw(st.sampled_from(DTYPES))
    q, k, v = qkv(batch, ratio * kv_heads, kv_heads, min(tq, t_k), t_k, dim, dtype,
                  seed=draw(st.integers(0, 2**16)))
    return q, k, v


# ------------------------------------------------------ fixed, cheap cases --
@points(1)
def test_a_decode_step_attends_to_every_key(student):
    """Tq = 1 (one decode step) is the last position: it sees all Tk keys."""
    q, k, v = qkv(2, 4, 2, 1, 7, 8, seed=1)
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, naive_attention(q, k, v), q, v, "decode output (Tq=1, Tk=7)")


@points(1)
def test_a_prefill_uses_the_lower_triangular_mask(student):
    """Tq = Tk: query i sees keys 0..i, so the first query returns v[0] exactly."""
    q, k, v = qkv(1, 2, 2, 6, 6, 4, seed=2)
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, naive_attention(q, k, v), q, v, "prefill output (Tq=Tk=6)")
    assert_all((got[:, :, 0] - v[:, :, 0]).abs() <= 1e-6, "the first query must return v[0]",
               got=got[:, :, 0], v0=v[:, :, 0])


@points(2)
@pytest.mark.parametrize("t_q,t_k", [(3, 8), (2, 5), (4, 5)], ids=str)
def test_a_chunked_prefill_is_aligned_bottom_right(student, t_q, t_k):
    """Tq < Tk: query i is absolute position Tk - Tq + i and sees keys 0..Tk-Tq+i
    (not 0..i, which is top-left alignment)."""
    q, k, v = qkv(2, 2, 1, t_q, t_k, 4, seed=3)
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, naive_attention(q, k, v), q, v,
                           f"chunked prefill output (Tq={t_q}, Tk={t_k})")


@points(2)
@pytest.mark.parametrize("ratio", GQA_RATIOS)
def test_query_head_h_reads_kv_head_h_floordiv_group(student, ratio):
    """Grouped-query attention: query head h reads kv head h // (H // H_kv), so each
    kv head serves a block of consecutive query heads (not h % H_kv)."""
    q, k, v = qkv(1, 3 * ratio, 3, 3, 5, 4, seed=ratio)
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, naive_attention(q, k, v), q, v,
                           f"attention with H = {ratio} * H_kv")


@points(1)
def test_sm_scale_replaces_one_over_sqrt_d(student):
    """sm_scale multiplies the scores instead of 1/sqrt(D)."""
    q, k, v = qkv(1, 2, 1, 3, 4, 16, seed=5)
    for scale in (0.05, 1.0, 1.7):
        got = student.causal_attention(q, k, v, sm_scale=scale)
        assert_attention_close(got, naive_attention(q, k, v, scale), q, v,
                               f"attention with sm_scale={scale}")


@points(2)
def test_fp16_inputs_with_large_scores_stay_finite(student):
    """Scores are computed in float32: fp16 q·k beyond fp16's range (65504) gives a
    finite, correct fp16 output."""
    _, _, v = qkv(1, 2, 1, 3, 5, 64, seed=6)
    signs = torch.where(torch.randn(64, generator=torch.Generator().manual_seed(6)) > 0, 1.0, -1.0)
    q = (40 * signs).expand(1, 2, 3, 64).half()
    c = torch.tensor([1.0, -1.0, 0.5, 1.0, -0.5])                 # q·k_j = 102400 * c_j
    k = (40 * c[:, None] * signs).expand(1, 1, 5, 64).half()
    v = v.half()
    got = student.causal_attention(q, k, v)
    assert_tensor(got, dtype=torch.float16, shape=q.shape, what="fp16 output")
    assert_all(torch.isfinite(got), "output has nan or inf", got=got)
    assert_attention_close(got, naive_attention(q, k, v), q, v, "fp16 output, large scores")


@points(1)
def test_inputs_are_not_modified(student):
    """causal_attention leaves q, k and v as they were (no in-place scaling)."""
    q, k, v = qkv(1, 4, 2, 2, 3, 4, seed=7)
    _, after = call_and_inspect_inputs(student, "causal_attention", q, k, v)
    for name, before, now in zip("qkv", (q, k, v), after, strict=True):
        assert_equal(now, before, f"{name} after the call")


# ------------------------------------------------------------------ errors --
BAD = {
    "Tq > Tk": ((1, 2, 4, 4), (1, 2, 3, 4), (1, 2, 3, 4)),
    "H not a multiple of H_kv": ((1, 3, 2, 4), (1, 2, 2, 4), (1, 2, 2, 4)),
    "batch differs": ((2, 2, 2, 4), (1, 2, 2, 4), (1, 2, 2, 4)),
    "head_dim differs": ((1, 2, 2, 4), (1, 2, 2, 8), (1, 2, 2, 8)),
    "k and v differ": ((1, 2, 2, 4), (1, 2, 3, 4), (1, 2, 2, 4)),
    "q 3-D": ((2, 2, 4), (1, 2, 2, 4), (1, 2, 2, 4)),
}


@points(2)
@pytest.mark.parametrize("name", list(BAD))
def test_inputs_that_do_not_fit_raise_value_error(student, name):
    """Shapes that do not fit together (Tq > Tk, H % H_kv != 0, other B or D, k/v
    mismatch, wrong rank) raise ValueError, never a silent answer."""
    q, k, v = (torch.randn(s) for s in BAD[name])
    assert_raises(ValueError, student.causal_attention, q, k, v,
                  what=f"{name}: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)}")


# -------------------------------------------------------------- property --
@points(4)
@given(inputs=attention_inputs(), scaled=st.booleans())
def test_attention_equals_a_float64_masked_softmax(student, inputs, scaled):
    """For every shape with 1 <= Tq <= Tk, GQA ratio 1/2/4/8 and dtype, the output equals
    softmax(q·kᵀ·scale + bottom-right causal mask)·v computed in float64."""
    q, k, v = inputs
    sm_scale = 0.3 if scaled else None
    got = student.causal_attention(q, k, v, sm_scale=sm_scale)
    assert_attention_close(got, naive_attention(q, k, v, sm_scale), q, v,
                           k=k, sm_scale=sm_scale)


@points(1)
@given(inputs=attention_inputs(t_q=1))
def test_decode_steps_equal_a_float64_softmax_over_all_keys(student, inputs):
    """Tq = 1 for any Tk, heads and dtype: a softmax over every key, no mask."""
    q, k, v = inputs
    scores = (q.double() @ k.double().repeat_interleave(q.shape[1] // k.shape[1], 1)
              .transpose(-1, -2)) / math.sqrt(q.shape[-1])
    expected = torch.softmax(scores, -1) @ v.double().repeat_interleave(q.shape[1] // k.shape[1], 1)
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, expected, q, v, k=k)


@pytest.mark.gpu
@points(0)
def test_fp16_attention_on_the_gpu(student):
    """On CUDA tensors the output stays on the GPU and matches the float64 softmax."""
    q, k, v = (t.cuda() for t in qkv(2, 8, 2, 5, 33, 64, torch.float16, seed=8))
    got = student.causal_attention(q, k, v)
    assert_attention_close(got, naive_attention(q, k, v), q, v, "fp16 attention on CUDA")
