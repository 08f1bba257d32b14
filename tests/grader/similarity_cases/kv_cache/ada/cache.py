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
        for name, value in [("batch_size", batch_size), ("max_seq_len", max_seq_len),
                            ("n_kv_heads", n_kv_heads), ("head_dim", head_dim)]:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype}")
        shape = (batch_size, n_kv_heads, max_seq_len, head_dim)
        # The one allocation: update() only ever writes into these two tensors.
        self.k_cache = torch.zeros(shape, dtype=dtype, device=device)
        self.v_cache = torch.zeros(shape, dtype=dtype, device=device)
        self.seq_len = 0

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
        batch, heads, _, dim = self.k_cache.shape
        for x, name in ((k, "k"), (v, "v")):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 4:
                raise ValueError(f"{name} must be 4-D [B, H_kv, T_new, D], got {list(x.shape)}")
            if (x.shape[0], x.shape[1], x.shape[3]) != (batch, heads, dim):
                raise ValueError(f"{name} must have shape [{batch}, {heads}, T_new, {dim}], "
                                 f"got {list(x.shape)}")
            if x.dtype != self.k_cache.dtype:
                raise ValueError(f"{name} has dtype {x.dtype}, the cache {self.k_cache.dtype}")
            if x.device != self.k_cache.device:
                raise ValueError(f"{name} is on {x.device}, the cache on {self.k_cache.device}")
        if k.shape != v.shape:
            raise ValueError(f"k and v differ in shape: {list(k.shape)} vs {list(v.shape)}")

        start, end = self.seq_len, self.seq_len + k.shape[2]
        # Check before writing anything: a failed update leaves the cache unchanged.
        if end > self.max_seq_len:
            raise ValueError(f"k has {k.shape[2]} new positions but only "
                             f"{self.max_seq_len - start} of max_seq_len={self.max_seq_len} "
                             "are free")
        self.k_cache[:, :, start:end] = k
        self.v_cache[:, :, start:end] = v
        self.seq_len = end
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]

    def reset(self) -> None:
        """Forget every position (seq_len = 0) in O(1): keep the storage, touch no data."""
        self.seq_len = 0


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
    for x, name in ((q, "q"), (k, "k"), (v, "v")):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"{name} must be a 4-D floating tensor [B, H, T, D], "
                             f"got {x.dtype} of shape {list(x.shape)}")
        if x.dtype != q.dtype or x.device != q.device:
            raise ValueError(f"{name} is {x.dtype} on {x.device}, q is {q.dtype} on {q.device}")
    batch, heads, t_q, dim = q.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v differ in shape: {list(k.shape)} vs {list(v.shape)}")
    _, kv_heads, t_k, _ = k.shape
    if k.shape[0] != batch or k.shape[3] != dim:
        raise ValueError(f"k of shape {list(k.shape)} does not fit q of shape {list(q.shape)}")
    if heads % kv_heads != 0:
        raise ValueError(f"q's {heads} heads are not a multiple of k's {kv_heads} heads")
    if not 1 <= t_q <= t_k:
        raise ValueError(f"q has {t_q} positions, k has {t_k}: need 1 <= Tq <= Tk")
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(dim)

    # Grouped-query attention: query head h reads kv head h // group, i.e. each
    # kv head serves `group` consecutive query heads.
    group = heads // kv_heads
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)

    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    scores = (q.to(work) @ k.to(work).transpose(-2, -1)) * sm_scale   # [B, H, Tq, Tk]
    # Bottom-right alignment: query i is absolute position Tk - Tq + i.
    i = torch.arange(t_q, device=q.device)[:, None]
    j = torch.arange(t_k, device=q.device)[None, :]
    scores = scores.masked_fill(j > (t_k - t_q) + i, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return (probs @ v.to(work)).to(q.dtype)
