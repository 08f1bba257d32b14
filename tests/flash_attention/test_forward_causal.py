"""Hidden properties of flash_attention_forward with causal=True (Task 4.2, SPEC §3.4).

The mask is bottom-right aligned, as in kv_cache (SPEC §3.3): query i sits at
absolute position Tk − Tq + i and sees keys j <= Tk − Tq + i. With Tq > Tk the
first Tq − Tk queries see no key at all: o = 0 and lse = −inf.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_tensor
from grader.kit.strategies import KERNEL_DEVICE
from tests.flash_attention.expect import (
    DTYPES,
    assert_forward_matches,
    attention_cases,
    causal_mask,
    make_qkv,
)

pytestmark = pytest.mark.task("4.2")
points = pytest.mark.points


@points(2)
@pytest.mark.parametrize("n_q, n_k", [(3, 5), (5, 3), (4, 4), (1, 6), (19, 37)], ids=str)
def test_the_mask_is_aligned_bottom_right(student, n_q, n_k):
    """With v = identity rows, o is the attention matrix itself: query i puts weight
    exactly on keys j <= Tk − Tq + i (none where that is negative)."""
    dim = 64 if n_k > 16 else 16
    q, k, _ = make_qkv((1, 1, n_q, dim), n_k, torch.float32, seed=n_q * 100 + n_k)
    v = torch.eye(n_k, dim, device=KERNEL_DEVICE)[None, None]
    o, lse = student.flash_attention_forward(q, k, v, causal=True)
    assert_tensor(o, dtype=torch.float32, shape=(1, 1, n_q, dim), what="o")
    weights = o[0, 0, :, :n_k].cpu()
    visible = causal_mask(n_q, n_k)
    assert_all((weights > 0) == visible,
               f"query i must see exactly keys j <= Tk - Tq + i = {n_k - n_q} + i",
               got_weight_positive=weights > 0, expected=visible)
    assert_forward_matches(o, lse, q, k, v, causal=True, sm_scale=None)


@points(3)
@settings(max_examples=20)
@given(case=attention_cases(causal=st.just(True))
       .filter(lambda c: c[0].shape[2] <= c[1].shape[2]))
def test_causal_output_and_lse_equal_float64_attention(student, case):
    """Causal attention with Tq <= Tk (a prefix in the cache) equals float64 attention,
    for every head dim, fp32/fp16, given or default sm_scale, any tails."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(2)
@settings(max_examples=15)
@given(case=attention_cases(causal=st.just(True), max_t=60)
       .filter(lambda c: c[0].shape[2] > c[1].shape[2]))
def test_queries_that_see_no_key_give_zero_output_and_minus_inf_lse(student, case):
    """Causal with Tq > Tk: the first Tq − Tk rows see no key and give o = 0 (not nan)
    and lse = −inf; the other rows are exact."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_tensor(o, dtype=q.dtype, shape=q.shape, what="o")
    blind = q.shape[2] - k.shape[2]
    assert_all(o[:, :, :blind].cpu() == 0, "o of a row that sees no key must be 0", got=o)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(2)
@settings(max_examples=8)
@given(case=attention_cases(dims=(16,), min_t=129, max_t=260, batch_heads=((1, 1),),
                            causal=st.just(True)))
def test_causal_over_several_tiles_with_tails(student, case):
    """Tq, Tk in 129..260: full tiles below the diagonal, diagonal tiles and tails all agree
    with float64 attention."""
    q, k, v, causal, sm_scale = case
    o, lse = student.flash_attention_forward(q, k, v, causal=causal, sm_scale=sm_scale)
    assert_forward_matches(o, lse, q, k, v, causal=causal, sm_scale=sm_scale)


@points(1)
@settings(max_examples=15)
@given(case=attention_cases(max_t=70, causal=st.just(True)))
def test_one_query_sees_every_key(student, case):
    """Decoding (Tq = 1): the single query is the newest position and sees all Tk keys,
    so causal and non-causal attention agree."""
    q, k, v, _, sm_scale = case
    q = q[:, :, -1:]
    o_causal, lse_causal = student.flash_attention_forward(q, k, v, causal=True,
                                                           sm_scale=sm_scale)
    assert_forward_matches(o_causal, lse_causal, q, k, v, causal=False, sm_scale=sm_scale,
                           what=" (causal, Tq = 1)")


# ------------------------------------------------------------------ GPU only --
@pytest.mark.gpu
@points(0)
@pytest.mark.parametrize("dim", [64, 128])
@pytest.mark.parametrize("n_q, n_k", [(1024, 1024), (1000, 2049), (2047, 513)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
def test_large_causal_problems_on_the_gpu(student, dtype, n_q, n_k, dim):
    """On a GPU, long causal sequences in every dtype (bf16 included) match float64."""
    q, k, v = make_qkv((2, 3, n_q, dim), n_k, dtype, seed=n_q + dim)
    o, lse = student.flash_attention_forward(q, k, v, causal=True)
    assert_forward_matches(o, lse, q, k, v, causal=True, sm_scale=None)
