"""Hidden properties of cached decoding with the provided model (Task 3.3, SPEC §3.3).

The model (the grader's copy of assignments/kv_cache/model.py) runs in this
process, with the student's KVCache and causal_attention called through the
`student` seam: only they run in the worker, so patching the worker's copy of
model.py changes nothing here. The expected logits come from the same model
with a float64 masked-softmax attention and no cache.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.kv_cache.oracle import (
    assert_logits_close,
    assert_same_generation,
    generation,
    model_module,
    oracle_generation,
    oracle_logits,
    prefill_in_chunks,
)

pytestmark = pytest.mark.task("3.3")
points = pytest.mark.points
VOCAB = model_module().Config().vocab_size


@st.composite
def prompts(draw, max_batch=3, max_len=8):
    """Token ids [B, T] from a drawn seed; B > 1 allowed (no padding: equal lengths)."""
    batch = draw(st.integers(1, max_batch))
    length = draw(st.integers(1, max_len))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return torch.randint(0, VOCAB, (batch, length), generator=g)


@points(2)
def test_a_short_cached_generation_matches_the_oracle(student):
    """Greedy generation of 6 tokens from a 2 x 4 prompt, with the cache, gives the
    oracle's tokens and logits."""
    prompt = torch.tensor([[5, 17, 3, 60], [88, 1, 1, 42]])
    got = generation(student, prompt, 6, True, 0)
    assert_same_generation(got, oracle_generation(prompt, 6, 0), 4, "cached generation",
                           prompt=prompt)


@points(2)
@given(tokens=prompts(max_len=10), data=st.data())
def test_prefilling_in_chunks_gives_the_logits_of_one_pass(student, tokens, data):
    """Feeding a sequence through the cached model in chunks of any sizes gives every
    position the logits of one uncached pass, and every layer's seq_len counts the positions."""
    length = tokens.shape[1]
    chunks, left = [], length
    while left:
        chunks.append(data.draw(st.integers(1, left), label="chunk"))
        left -= chunks[-1]
    seed = data.draw(st.integers(0, 3), label="model seed")
    logits, seq_lens = prefill_in_chunks(student, tokens, chunks, seed)
    expected = oracle_logits(tokens, seed)
    assert_logits_close(logits, expected, f"logits with chunks {chunks}", tokens=tokens)
    ends = [sum(chunks[:i + 1]) for i in range(len(chunks))]
    assert seq_lens == [[end] * len(seq_lens[0]) for end in ends], \
        f"seq_len of each layer's cache after chunks {chunks}: {seq_lens}"


@points(3)
@given(prompt=prompts(), new=st.integers(1, 10), seed=st.integers(0, 3))
def test_cached_generation_matches_uncached_float64_generation(student, prompt, new, seed):
    """Greedy generation with the cache gives the tokens and logits of generation without
    a cache (float64 attention), for random prompts, lengths, batches and models."""
    got = generation(student, prompt, new, True, seed)
    assert_same_generation(got, oracle_generation(prompt, new, seed), prompt.shape[1],
                           "cached generation", prompt=prompt)


@points(1)
@given(prompt=prompts(max_batch=2, max_len=5), new=st.integers(1, 8))
def test_cached_and_uncached_generation_agree(student, prompt, new):
    """With your attention both ways, generation with and without the cache agrees."""
    cached = generation(student, prompt, new, True, 1)
    uncached = generation(student, prompt, new, False, 1)
    assert_same_generation(cached, uncached, prompt.shape[1], "cached vs your uncached generation",
                           prompt=prompt)
