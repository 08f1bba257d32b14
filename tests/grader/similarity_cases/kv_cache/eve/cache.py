from __future__ import annotations

import math

import torch
from torch import Tensor

_FLOATS = {torch.float16, torch.bfloat16, torch.float32, torch.float64}


def _same(a: Tensor, b: Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device


class KVCache:
    """Keys and values live in one preallocated buffer pair; writes go through a cursor."""

    def __init__(self, batch_size: int, max_seq_len: int, n_kv_heads: int, head_dim: int,
                 *, dtype=torch.float32, device="cpu"):
        for what in (batch_size, max_seq_len, n_kv_heads, head_dim):
            if not isinstance(what, int) or isinstance(what, bool):
                raise TypeError("expected an int size")
        if batch_size < 1 or max_seq_len < 1 or n_kv_heads < 1 or head_dim < 1:
            raise ValueError("every size must be at least 1")
        if dtype not in _FLOATS:
            raise ValueError("keys and values must be floating point")
        layout = (batch_size, n_kv_heads, max_seq_len, head_dim)
        self.k_cache = torch.zeros(layout, dtype=dtype, device=device)
        self.v_cache = torch.zeros(layout, dtype=dtype, device=device)
        self._cursor = 0

    @property
    def seq_len(self) -> int:
        return self._cursor

    @property
    def max_seq_len(self) -> int:
        return self.k_cache.shape[-2]

    def update(self, k: Tensor, v: Tensor):
        b, g, _, d = self.k_cache.shape
        if k.shape != v.shape or k.ndim != 4 or (k.shape[0], k.shape[1], k.shape[-1]) != (b, g, d):
            raise ValueError(f"expected [{b}, {g}, T, {d}] for k and v")
        if not (_same(k, self.k_cache) and _same(v, self.k_cache)):
            raise ValueError("k and v must match the cache's dtype and device")
        stop = self._cursor + k.shape[-2]
        if stop > self.max_seq_len:
            raise ValueError("the cache would overflow")
        window = slice(self._cursor, stop)
        self.k_cache[:, :, window].copy_(k)
        self.v_cache[:, :, window].copy_(v)
        self._cursor = stop
        filled = slice(0, stop)
        return self.k_cache[:, :, filled], self.v_cache[:, :, filled]

    def reset(self) -> None:
        self._cursor = 0


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, sm_scale: float | None = None) -> Tensor:
    if q.ndim != 4 or k.ndim != 4 or v.shape != k.shape:
        raise ValueError("q, k, v must be 4-D and k, v alike")
    if not (_same(q, k) and _same(q, v)):
        raise ValueError("q, k, v must share dtype and device")
    n_q, n_kv = q.shape[1], k.shape[1]
    if n_q % n_kv or q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError("head counts or sizes do not fit")
    lq, lk = q.shape[-2], k.shape[-2]
    if lq > lk:
        raise ValueError("more queries than keys")
    scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    f = torch.float64 if q.dtype == torch.float64 else torch.float32
    kk = torch.repeat_interleave(k.to(f), n_q // n_kv, dim=1)
    vv = torch.repeat_interleave(v.to(f), n_q // n_kv, dim=1)
    att = torch.matmul(q.to(f), kk.transpose(-1, -2)).mul_(scale)
    rows = torch.arange(lq, device=q.device).unsqueeze(-1) + (lk - lq)
    cols = torch.arange(lk, device=q.device)
    att = att.where(cols <= rows, torch.tensor(float("-inf"), dtype=f, device=q.device))
    return att.softmax(dim=-1).matmul(vv).to(q.dtype)
