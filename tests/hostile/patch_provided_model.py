"""No KVCache, but its import patches the provided model so that cached decoding never
uses a cache: generate(use_cache=True) recomputes everything, and "cached" forward passes
re-run the whole history kept beside fake caches. Tests that run the provided model in
the worker (the student's process) would see a perfect cached generation.
Target: kv_cache
Suite: hidden
Attacks: generation|prefilling_in_chunks
Expect: NotImplementedError
"""

import math

import model
import torch


class KVCache:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Task 3.1: implement KVCache")


def causal_attention(q, k, v, *, sm_scale=None):
    """Correct (Task 3.2 is done); only the cache is missing."""
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1).float(), v.repeat_interleave(group, 1).float()
    t_q, t_k = q.shape[2], k.shape[2]
    scale = 1 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    scores = q.float() @ k.transpose(-1, -2) * scale
    i, j = torch.arange(t_q)[:, None], torch.arange(t_k)[None, :]
    scores = scores.masked_fill(j > t_k - t_q + i, float("-inf"))
    return (torch.softmax(scores, -1) @ v).to(q.dtype)


class _History:
    """Stands in for a KVCache: remembers the tokens fed so far, nothing else."""

    def __init__(self, batch):
        self.tokens = torch.zeros(batch, 0, dtype=torch.int64)

    @property
    def seq_len(self):
        return self.tokens.shape[1]


_uncached_forward, _generate = model.TinyTransformer.forward, model.generate


def _forward(self, tokens, caches=None):
    if caches is None:
        return _uncached_forward(self, tokens)
    history = torch.cat([caches[0].tokens, tokens], dim=1)
    for cache in caches:
        cache.tokens = history
    return _uncached_forward(self, history)[:, -tokens.shape[1]:]


def _generate_without_cache(net, prompt, max_new_tokens, use_cache=True, **kwargs):
    return _generate(net, prompt, max_new_tokens, False, **kwargs)


model.TinyTransformer.new_caches = lambda self, batch, max_len: [
    _History(batch) for _ in range(self.config.n_layers)]
model.TinyTransformer.forward = _forward
model.generate = _generate_without_cache
