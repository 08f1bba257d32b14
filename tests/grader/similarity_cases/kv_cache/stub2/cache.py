"""Assignment 3: a KV cache and causal attention for cached decoding.

You implement (see README.md beside this file):

    Task 3.1  KVCache           a preallocated ("static") cache of keys and values
    Task 3.2  causal_attention  bottom-right-aligned causal attention with GQA
    Task 3.3  cached decoding   nothing new to write: the provided model.py generates
                                text with your KVCache and causal_attention, and the
                                tests check it against generation without a cache

Shapes: B batch, H query heads, H_kv key/value heads (H % H_kv == 0), T
positions, D head dimension. Keys and values are [B, H_kv, T, D].

Run the public tests with `grader test kv_cache` (or `pytest assignments/kv_cache`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class KVCache:
    """Keys and values of the positions seen so far, in storage allocated once.

    A decoder attends every new query to the keys and values of all earlier
    positions. Those never change, so instead of recomputing them at each step
    the cache keeps them:

        k_cache, v_cache: [B, H_kv, max_seq_len, D]   allocated once, here
        seq_len:          how many positions are filled (0 <= seq_len <= max_seq_len)

    Positions [0, seq_len) hold data; what lies beyond seq_len is unspecified.

    Args:
        batch_size, max_seq_len, n_kv_heads, head_dim: ints >= 1.
        dtype:  floating dtype of the stored keys and values.
        device: where they live.
    Raises:
        ValueError: a size < 1 or a non-floating dtype.
        TypeError:  a size that is not an int.
    """

    def __init__(self, batch_size: int, max_seq_len: int, n_kv_heads: int, head_dim: int,
                 *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        raise NotImplementedError("Task 3.1: implement KVCache.__init__ (see README.md)")

    @property
    def max_seq_len(self) -> int:
        """The capacity: how many positions fit."""
        return self.k_cache.shape[2]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append T_new positions and return every key and value so far.

            k_cache[:, :, seq_len : seq_len + T_new] = k      (same for v)
            seq_len += T_new
            return k_cache[:, :, :seq_len], v_cache[:, :, :seq_len]    (views)

        Cost O(T_new): the new positions are copied in; the prefix is neither
        copied nor re-allocated, and the returned tensors are views of the
        cache's own storage. T_new = 0 is allowed and changes nothing.

        Args:
            k, v: [B, H_kv, T_new, D], the cache's dtype and device, same shape.
        Returns:
            (keys, values): views [B, H_kv, seq_len, D] of k_cache and v_cache.
        Raises:
            ValueError: wrong shape, dtype or device; or seq_len + T_new > max_seq_len,
                        in which case the cache is left exactly as it was.
        """
        raise NotImplementedError("Task 3.1: implement KVCache.update (see README.md)")

    def reset(self) -> None:
        """Forget every position (seq_len = 0) in O(1): keep the storage, touch no data."""
        raise NotImplementedError("Task 3.1: implement KVCache.reset (see README.md)")


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, sm_scale: float | None = None) -> Tensor:
    """Causal softmax attention with grouped-query heads, bottom-right aligned.

        S[b, h, i, j] = sm_scale * q[b, h, i] · k[b, g(h), j]         g(h) = h // (H // H_kv)
        S[b, h, i, j] = -inf   where j > Tk - Tq + i                   (the causal mask)
        out[b, h, i]  = sum_j softmax_j(S[b, h, i, :]) * v[b, g(h), j]

    The Tq queries are the *last* Tq of the Tk positions: query i sits at
    absolute position Tk - Tq + i and sees keys 0 ..= Tk - Tq + i. So Tq = 1
    (a decode step) sees every key, and Tq = Tk (a prefill) is the usual
    lower-triangular mask.

    Scores, mask and softmax are computed in float32 (float64 for float64
    inputs), so fp16 inputs with large scores stay finite.

    Args:
        q:    [B, H, Tq, D].
        k, v: [B, H_kv, Tk, D], with 1 <= Tq <= Tk and H % H_kv == 0.
        sm_scale: the score scale; None means 1 / sqrt(D).
    Returns:
        [B, H, Tq, D] in q's dtype, on q's device.
    Raises:
        ValueError: shapes that do not fit together, Tq > Tk, H % H_kv != 0,
                    q, k, v of different dtypes or devices.
    """
    raise NotImplementedError("Task 3.2: implement causal_attention (see README.md)")
