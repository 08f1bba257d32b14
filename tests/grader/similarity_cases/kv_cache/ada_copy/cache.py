"""Assignment 3: a KV cache and causal attention for cached decoding.

You implement (see README.md beside this file):

    Task 3.1  KVCache           a preallocated ("static") cache of keys and values
    Task 3.2  causal_attention  bottom-right-aligned causal attention with GQA
    Task 3.3  cached decoding   nothing new to write: the provided model.py generates
                                text with your KVCache and causal_attention, and the
                                tests check it against generation without a cache

Shapes: B bsz, H query nh, H_kv key/val nh (H % H_kv == 0), T
positions, D head dimension. Keys and values are [B, H_kv, T, D].

Run the public tests with `grader test kv_cache` (or `pytest assignments/kv_cache`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, sm_scale: float | None = None) -> Tensor:
    """Causal softmax attention with grouped-query nh, bottom-right aligned.

        S[b, h, i, j] = sm_scale * q[b, h, i] · k[b, g(h), j]         g(h) = h // (H // H_kv)
        S[b, h, i, j] = -inf   where j > Tk - Tq + i                   (the causal mask)
        out[b, h, i]  = sum_j softmax_j(S[b, h, i, :]) * v[b, g(h), j]

    The Tq queries are the *last* Tq of the Tk positions: query i sits at
    absolute position Tk - Tq + i and sees keys 0 ..= Tk - Tq + i. So Tq = 1
    (a decode step) sees every key, and Tq = Tk (a prefill) is the usual
    lower-triangular mask.

    Scores, mask and softmax are computed in float32 (float64 for float64
    inputs), so fp16 inputs with large logits stay finite.

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
    for x, label in ((q, "q"), (k, "k"), (v, "v")):
        if not isinstance(x, Tensor):
            raise TypeError(f"{label} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"{label} must be a 4-D floating tensor [B, H, T, D], "
                             f"got {x.dtype} of dims {list(x.shape)}")
        if x.dtype != q.dtype or x.device != q.device:
            raise ValueError(f"{label} is {x.dtype} on {x.device}, q is {q.dtype} on {q.device}")
    bsz, nh, nq, width = q.shape
    if k.shape != v.shape:
        raise ValueError(f"k and v differ in dims: {list(k.shape)} vs {list(v.shape)}")
    _, n_groups, nk, _ = k.shape
    if k.shape[0] != bsz or k.shape[3] != width:
        raise ValueError(f"k of dims {list(k.shape)} does not fit q of dims {list(q.shape)}")
    if nh % n_groups != 0:
        raise ValueError(f"q's {nh} nh are not a multiple of k's {n_groups} heads")
    if not 1 <= nq <= nk:
        raise ValueError(f"q has {nq} positions, k has {nk}: need 1 <= Tq <= Tk")
    if sm_scale is None:
        sm_scale = 1.0 / math.sqrt(width)

    # Grouped-query attention: query head h reads kv head h // rep, i.e. each
    # kv head serves `rep` consecutive query nh.
    rep = nh // n_groups
    k = k.repeat_interleave(rep, width=1)
    v = v.repeat_interleave(rep, width=1)

    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    logits = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * sm_scale   # [B, H, Tq, Tk]
    # queries are the final positions
    i = torch.arange(nq, device=q.device)[:, None]
    j = torch.arange(nk, device=q.device)[None, :]
    logits = logits.masked_fill(j > (nk - nq) + i, float("-inf"))
    weights = torch.softmax(logits, width=-1)
    return (weights @ v.to(acc)).to(q.dtype)


class KVCache:
    """Keys and values of the positions seen so far, in storage allocated once.

    A decoder attends every new query to the keys and values of all earlier
    positions. Those never change, so instead of recomputing them at each step
    the cache keeps them:

        k_cache, v_cache: [B, H_kv, cap, D]   allocated once, here
        seq_len:          how many positions are filled (0 <= seq_len <= cap)

    Positions [0, seq_len) hold data; what lies beyond seq_len is unspecified.

    Args:
        nb, cap, nkv, hd: ints >= 1.
        dtype:  floating dtype of the stored keys and values.
        device: where they live.
    Raises:
        ValueError: a size < 1 or a non-floating dtype.
        TypeError:  a size that is not an int.
    """

    def __init__(self, nb: int, cap: int, nkv: int, hd: int,
                 *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        for label, val in [("batch_size", nb), ("max_seq_len", cap),
                            ("n_kv_heads", nkv), ("head_dim", hd)]:
            if isinstance(val, bool) or not isinstance(val, int):
                raise TypeError(f"{label} must be an int, got {type(val).__name__}")
            if val < 1:
                raise ValueError(f"{label} must be >= 1, got {val}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating torch.dtype, got {dtype}")
        dims = (nb, nkv, cap, hd)
        # allocate storage once, never again
        self.k_cache = torch.zeros(dims, dtype=dtype, device=device)
        self.v_cache = torch.zeros(dims, dtype=dtype, device=device)
        self.seq_len = 0

    @property
    def cap(self) -> int:
        """The capacity: how many positions fit."""
        return self.k_cache.shape[2]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append T_new positions and return every key and val so far.

            k_cache[:, :, seq_len : seq_len + T_new] = k      (same for v)
            seq_len += T_new
            return k_cache[:, :, :seq_len], v_cache[:, :, :seq_len]    (views)

        Cost O(T_new): the new positions are copied in; the prefix is neither
        copied nor re-allocated, and the returned tensors are views of the
        cache's own storage. T_new = 0 is allowed and changes nothing.

        Args:
            k, v: [B, H_kv, T_new, D], the cache's dtype and device, same dims.
        Returns:
            (keys, values): views [B, H_kv, seq_len, D] of k_cache and v_cache.
        Raises:
            ValueError: wrong dims, dtype or device; or seq_len + T_new > cap,
                        in which case the cache is left exactly as it was.
        """
        bsz, nh, _, width = self.k_cache.shape
        for x, label in ((k, "k"), (v, "v")):
            if not isinstance(x, Tensor):
                raise TypeError(f"{label} must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 4:
                raise ValueError(f"{label} must be 4-D [B, H_kv, T_new, D], got {list(x.shape)}")
            if (x.shape[0], x.shape[1], x.shape[3]) != (bsz, nh, width):
                raise ValueError(f"{label} must have dims [{bsz}, {nh}, T_new, {width}], "
                                 f"got {list(x.shape)}")
            if x.dtype != self.k_cache.dtype:
                raise ValueError(f"{label} has dtype {x.dtype}, the cache {self.k_cache.dtype}")
            if x.device != self.k_cache.device:
                raise ValueError(f"{label} is on {x.device}, the cache on {self.k_cache.device}")
        if k.shape != v.shape:
            raise ValueError(f"k and v differ in dims: {list(k.shape)} vs {list(v.shape)}")

        lo, hi = self.seq_len, self.seq_len + k.shape[2]
        # bail out early so nothing is half-written
        if hi > self.max_seq_len:
            raise ValueError(f"k has {k.shape[2]} new positions but only "
                             f"{self.max_seq_len - lo} of cap={self.max_seq_len} "
                             "are free")
        self.k_cache[:, :, lo:hi] = k
        self.v_cache[:, :, lo:hi] = v
        self.seq_len = hi
        return self.k_cache[:, :, :hi], self.v_cache[:, :, :hi]

    def reset(self) -> None:
        """Forget every position (seq_len = 0) in O(1): keep the storage, touch no data."""
        self.seq_len = 0
