"""Public tests for assignment 3 (kv_cache): small examples you can debug.

Run them with `grader test kv_cache` or `pytest assignments/kv_cache`.
`student` is your module (cache.py), imported in this process, so `pytest
--pdb` and breakpoints work. The functions named `probe_...` drive your
objects; when the grader runs these tests they run beside your code in a
separate process, which is why they only use their arguments and torch.
Official grading adds hidden property-based tests; README.md says what they check.
"""

import math

import pytest
import torch

from grader.kit.checks import assert_equal
from grader.kit.probes import run_probe
from grader.kit.provided import provided_module

points = pytest.mark.points


# ------------------------------------------------------------------ probes --
def probe_prefill_then_decode(impl, k, v, max_seq_len):
    """Update with all but the last position at once, then with the last one."""
    batch, heads, length, dim = k.shape
    cache = impl.KVCache(batch, max_seq_len, heads, dim)
    address = cache.k_cache.data_ptr()
    keys1, _ = cache.update(k[:, :, :-1], v[:, :, :-1])
    len1 = cache.seq_len
    keys2, values2 = cache.update(k[:, :, -1:], v[:, :, -1:])
    return {"shape": list(cache.k_cache.shape), "len1": len1, "len2": cache.seq_len,
            "keys1": keys1.clone(), "keys2": keys2.clone(), "values2": values2.clone(),
            "same_address": cache.k_cache.data_ptr() == address,
            "views": keys2.data_ptr() == address}


def probe_overflow(impl):
    """A cache of 4 positions holding 3 is asked to take 2 more."""
    cache = impl.KVCache(1, 4, 1, 2)
    cache.update(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2))
    try:
        cache.update(torch.full((1, 1, 2, 2), 7.0), torch.full((1, 1, 2, 2), 7.0))
        raised = False
    except ValueError:
        raised = True
    return {"raised": raised, "seq_len": cache.seq_len, "k_cache": cache.k_cache.clone()}


def probe_reset(impl):
    cache = impl.KVCache(1, 4, 1, 2)
    cache.update(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2))
    cache.reset()
    keys, _ = cache.update(torch.full((1, 1, 1, 2), 5.0), torch.full((1, 1, 1, 2), 5.0))
    return {"seq_len": cache.seq_len, "keys": keys.clone()}


def generate(student, prompt, new_tokens, use_cache):
    """Greedy (tokens, logits) of the provided model, run in the test's own process (the
    grader's copy of model.py), with your KVCache and causal_attention."""
    model = provided_module("kv_cache", "model.py")
    net = model.TinyTransformer(model.Config(), student, seed=0)
    return model.generate(net, prompt, new_tokens, use_cache, return_logits=True)


# ------------------------------------------------------------ Task 3.1 KVCache --
@points(2)
@pytest.mark.task("3.1")
def test_3_1_prefill_then_decode_returns_every_position(student):
    """A 4-position prefill and a 1-position decode step return all 5 positions so far,
    as views of storage allocated once."""
    k = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).reshape(2, 3, 5, 4)
    v = -k
    got = run_probe(student, probe_prefill_then_decode, k, v, 8)
    assert got["shape"] == [2, 3, 8, 4], "k_cache must be [B, H_kv, max_seq_len, D]"
    assert (got["len1"], got["len2"]) == (4, 5), "seq_len after the prefill and the decode step"
    assert_equal(got["keys1"], k[:, :, :4], "keys returned by the prefill update")
    assert_equal(got["keys2"], k, "keys returned by the decode update (all 5 positions)")
    assert_equal(got["values2"], v, "values returned by the decode update (all 5 positions)")
    assert got["same_address"], "k_cache was re-allocated"
    assert got["views"], "update must return views of k_cache, not copies"


@points(1)
@pytest.mark.task("3.1")
def test_3_1_overflow_raises_and_leaves_the_cache_unchanged(student):
    """3 + 2 positions do not fit in 4: ValueError, and nothing was written."""
    got = run_probe(student, probe_overflow)
    assert got["raised"], "expected ValueError"
    assert got["seq_len"] == 3
    assert (got["k_cache"] != 7.0).all(), "the failed update wrote into the cache"


@points(1)
@pytest.mark.task("3.1")
def test_3_1_reset_starts_again_at_position_zero(student):
    """After reset(), the next update fills position 0 and seq_len counts from 0."""
    got = run_probe(student, probe_reset)
    assert got["seq_len"] == 1
    assert got["keys"].tolist() == [[[[5.0, 5.0]]]]


@points(1)
@pytest.mark.task("3.1")
def test_3_1_keys_of_the_wrong_shape_raise_value_error(student):
    """k with another head_dim than the cache raises ValueError."""
    cache = student.KVCache(1, 4, 2, 3)
    with pytest.raises(ValueError):
        cache.update(torch.zeros(1, 2, 1, 5), torch.zeros(1, 2, 1, 5))


# -------------------------------------------------- Task 3.2 causal_attention --
def naive(q, k, v):
    """The formula, written plainly (float64)."""
    q, k, v = q.double(), k.double(), v.double()
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    t_q, t_k = q.shape[2], k.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    i, j = torch.arange(t_q)[:, None], torch.arange(t_k)[None, :]
    scores = scores.masked_fill(j > t_k - t_q + i, float("-inf"))
    return torch.softmax(scores, -1) @ v


@points(1)
@pytest.mark.task("3.2")
def test_3_2_decode_step_sees_every_key(student):
    """Tq = 1, Tk = 3: the query sits at the last position and sees all 3 keys."""
    q = torch.tensor([[[[1.0, 0.0]]]])
    k = torch.tensor([[[[0.0, 0.0], [math.sqrt(2) * math.log(2), 0.0], [0.0, 5.0]]]])
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [4.0, 4.0]]]])
    # scores [0, log 2, 0] -> softmax [1/4, 1/2, 1/4] -> [1/4 + 1, 1/2 + 1]
    out = student.causal_attention(q, k, v)
    assert out.shape == (1, 1, 1, 2) and out.dtype == torch.float32
    assert out.flatten().tolist() == pytest.approx([1.25, 1.5], abs=1e-6)


@points(1)
@pytest.mark.task("3.2")
def test_3_2_chunked_prefill_is_bottom_right_aligned(student):
    """Tq = 2, Tk = 4: the queries are positions 2 and 3, seeing keys 0..2 and 0..3."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 2, 4), torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    out = student.causal_attention(q, k, v)
    torch.testing.assert_close(out.double(), naive(q, k, v), rtol=1e-5, atol=1e-6)


@points(1)
@pytest.mark.task("3.2")
def test_3_2_grouped_query_heads(student):
    """4 query heads, 2 kv heads: query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1."""
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8)
    out = student.causal_attention(q, k, v)
    torch.testing.assert_close(out.double(), naive(q, k, v), rtol=1e-5, atol=1e-6)


@points(1)
@pytest.mark.task("3.2")
def test_3_2_more_queries_than_keys_raise_value_error(student):
    """Tq > Tk has no meaning here (SPEC: 1 <= Tq <= Tk): ValueError."""
    with pytest.raises(ValueError):
        student.causal_attention(torch.zeros(1, 1, 3, 2), torch.zeros(1, 1, 2, 2),
                                 torch.zeros(1, 1, 2, 2))


# ------------------------------------------------- Task 3.3 cached decoding --
@points(2)
@pytest.mark.task("3.3")
def test_3_3_cached_generation_equals_uncached_generation(student):
    """The provided model generates the same 8 tokens with and without your cache."""
    prompt = torch.tensor([[3, 14, 15, 92], [65, 35, 89, 79]])
    tokens, logits = generate(student, prompt, 8, True)
    tokens_ref, logits_ref = generate(student, prompt, 8, False)
    assert tokens.shape == (2, 12)
    torch.testing.assert_close(logits, logits_ref, rtol=1e-4, atol=1e-4)
    assert_equal(tokens, tokens_ref, "tokens generated with the cache (expected: without it)")
