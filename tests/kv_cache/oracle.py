"""Trusted expectations for kv_cache: a float64 attention, the provided model, comparisons.

Everything here runs in the trusted test process. The model file is the
grader's own copy of assignments/kv_cache/model.py (grader/kit/provided.py),
never the worker's, which the student's cache.py imports and could patch. It is
handed `ORACLE` (a float64 masked softmax) for the expected values, and the
`student` seam for the values under test: then only KVCache and
causal_attention run in the worker, and the model around them runs here.
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import torch

from grader.kit.checks import assert_close, assert_equal, assert_tensor
from grader.kit.provided import provided_module
from tests.kv_cache.tolerances import KV_ATTENTION_ATOL_SCALE, KV_LOGITS


# ----------------------------------------------------------------- attention --
def naive_attention(q, k, v, sm_scale=None) -> torch.Tensor:
    """out[b,h,i] = softmax_j(q·k_j * scale, masked to j <= Tk - Tq + i) · v, in float64.

    Built differently from a typical solution: the kv head of each query head is
    looked up in an explicit table h -> h // (H // H_kv), and the mask is the last
    Tq rows of the Tk x Tk lower triangle.
    """
    q, k, v = q.double().cpu(), k.double().cpu(), v.double().cpu()
    heads, t_q, dim = q.shape[1:]
    kv_heads, t_k = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(dim) if sm_scale is None else sm_scale
    kv_of_head = torch.tensor([h // (heads // kv_heads) for h in range(heads)])
    k, v = k[:, kv_of_head], v[:, kv_of_head]                        # [B, H, Tk, D]
    visible = torch.ones(t_k, t_k, dtype=torch.bool).tril()[t_k - t_q:]   # [Tq, Tk]
    scores = torch.einsum("bhid,bhjd->bhij", q, k) * scale
    scores = torch.where(visible, scores, -math.inf)
    return torch.einsum("bhij,bhjd->bhid", torch.softmax(scores, dim=-1), v)


def assert_attention_close(got, expected64, q, v, what="attention output", **context):
    """got has q's dtype and shape and is within tolerance of the float64 expectation.

    Outputs are convex combinations of rows of v, so the absolute tolerance
    scales with max|v| (KV_ATTENTION_ATOL_SCALE); rtol is the dtype's own.
    """
    assert_tensor(got, dtype=q.dtype, shape=expected64.shape, device=q.device.type, what=what)
    vmax = float(v.double().abs().max())
    assert vmax > 0, "test bug: v is all zeros, any answer would pass"
    assert_close(got, expected64, f"{what} differs from the float64 masked softmax",
                 dtype=q.dtype, atol_scale=KV_ATTENTION_ATOL_SCALE * vmax, **context)

# --------------------------------------------------------------------- model --
ORACLE = SimpleNamespace(
    causal_attention=lambda q, k, v, sm_scale=None: naive_attention(q, k, v, sm_scale).to(q.dtype),
    KVCache=None,  # the oracle never caches: it recomputes everything, in float64
)


def model_module():
    """The grader's own assignments/kv_cache/model.py."""
    return provided_module("kv_cache", "model.py")


def one_torch_thread(function):
    """Run `function` with one torch thread: the model's tensors are tiny, and a second
    thread only waits for a core (the worker has one thread; machines have two cores)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return wrapper


@one_torch_thread
def generation(impl, prompt, max_new_tokens, use_cache, seed):
    """Greedy (tokens, logits) of the provided model, run here, with `impl`'s KVCache and
    causal_attention (the `student` seam, or ORACLE)."""
    model = model_module()
    net = model.TinyTransformer(model.Config(), impl, seed)
    return model.generate(net, prompt, max_new_tokens, use_cache, return_logits=True)


@one_torch_thread
def prefill_in_chunks(impl, tokens, chunks, seed):
    """Feed tokens [B, T] through the provided model (run here) in chunks, with `impl`'s
    caches: the logits of every position and each layer's seq_len after each chunk."""
    model = model_module()
    net = model.TinyTransformer(model.Config(), impl, seed)
    caches = net.new_caches(tokens.shape[0], tokens.shape[1])
    logits, seq_lens, start = [], [], 0
    with torch.no_grad():
        for n in chunks:
            logits.append(net(tokens[:, start:start + n], caches))
            seq_lens.append([c.seq_len for c in caches])
            start += n
    return torch.cat(logits, dim=1), seq_lens


def oracle_generation(prompt, max_new_tokens, seed):
    """(tokens, logits) of uncached greedy generation with the float64 attention."""
    return generation(ORACLE, prompt, max_new_tokens, False, seed)


@one_torch_thread
def oracle_logits(tokens, seed):
    """Logits [B, T, vocab] of one uncached pass with the float64 attention."""
    model = model_module()
    with torch.no_grad():
        return model.TinyTransformer(model.Config(), ORACLE, seed)(tokens)


def logits_slack(logits) -> torch.Tensor:
    """How far a correct float32 run may move each logit: KV_LOGITS's atol + rtol·|logit|."""
    return KV_LOGITS.atol + KV_LOGITS.rtol * logits.double().abs()


def assert_logits_close(got, expected, what, **context):
    assert_tensor(got, dtype=expected.dtype, shape=expected.shape, what=what)
    assert_close(got, expected, what, tol=KV_LOGITS, **context)

def assert_same_generation(got, expected, prompt_len, what, **context):
    """Greedy runs agree: the same tokens wherever the expected top-2 logit margin exceeds
    twice the logits' tolerance, and logits within tolerance up to the first such
    near-tie that went the other way (after it the two runs continue different texts)."""
    tokens, logits = got
    tokens_ref, logits_ref = expected
    assert_tensor(tokens, dtype=torch.int64, shape=tokens_ref.shape, what=f"{what} tokens")
    assert_tensor(logits, dtype=logits_ref.dtype, shape=logits_ref.shape, what=f"{what} logits")
    assert_equal(tokens[:, :prompt_len], tokens_ref[:, :prompt_len],
                 f"{what}: the prompt comes back unchanged", **context)
    for b in range(tokens.shape[0]):
        for step in range(logits_ref.shape[1]):
            row, row_ref = logits[b, step], logits_ref[b, step]
            assert_logits_close(row, row_ref, f"{what}: logits of sequence {b}, new token {step}",
                                **context)
            position = prompt_len + step
            token, token_ref = int(tokens[b, position]), int(tokens_ref[b, position])
            if token == token_ref:
                continue
            top2 = row_ref.double().topk(2).values
            margin = float(top2[0] - top2[1])
            tie = 2 * float(logits_slack(top2[:1]))
            assert margin <= tie, (
                f"{what}: sequence {b}, new token {step} is {token}, expected {token_ref} "
                f"(top-2 logit margin {margin:.3g} is no near-tie: > {tie:.3g})")
            break  # a near-tie flipped: the rest continues another text
