"""KV cache, written with helper functions and einsum."""
import math

import torch


def _check_int(label, x):
    if type(x) is not int:
        raise TypeError(label + " must be int")
    if x <= 0:
        raise ValueError(label + " must be positive")


class KVCache:
    def __init__(self, batch_size, max_seq_len, n_kv_heads, head_dim, *,
                 dtype=torch.float32, device="cpu"):
        _check_int("batch_size", batch_size)
        _check_int("max_seq_len", max_seq_len)
        _check_int("n_kv_heads", n_kv_heads)
        _check_int("head_dim", head_dim)
        if not dtype.is_floating_point:
            raise ValueError("need a float dtype")
        self.k_cache = torch.empty(batch_size, n_kv_heads, max_seq_len, head_dim,
                                   dtype=dtype, device=device)
        self.v_cache = torch.empty_like(self.k_cache)
        self.seq_len = 0

    @property
    def max_seq_len(self):
        return self.k_cache.size(2)

    def _validate(self, t):
        want = list(self.k_cache.shape)
        got = list(t.shape)
        if len(got) != 4 or got[:2] != want[:2] or got[3] != want[3]:
            raise ValueError("bad shape %s" % got)
        if t.dtype != self.k_cache.dtype or t.device != self.k_cache.device:
            raise ValueError("dtype/device mismatch")

    def update(self, k, v):
        self._validate(k)
        self._validate(v)
        if k.shape != v.shape:
            raise ValueError("k/v mismatch")
        n = k.size(2)
        if self.seq_len + n > self.max_seq_len:
            raise ValueError("cache full")
        self.k_cache.narrow(2, self.seq_len, n).copy_(k)
        self.v_cache.narrow(2, self.seq_len, n).copy_(v)
        self.seq_len += n
        return self.k_cache.narrow(2, 0, self.seq_len), self.v_cache.narrow(2, 0, self.seq_len)

    def reset(self):
        self.seq_len = 0


def causal_attention(q, k, v, *, sm_scale=None):
    if not (q.dtype == k.dtype == v.dtype) or not (q.device == k.device == v.device):
        raise ValueError("mixed dtypes or devices")
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape:
        raise ValueError("bad shapes")
    B, H, Tq, D = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    if k.shape[0] != B or k.shape[3] != D or H % Hkv or Tq > Tk:
        raise ValueError("shapes do not fit")
    scale = sm_scale if sm_scale is not None else D ** -0.5
    acc = torch.float64 if q.dtype is torch.float64 else torch.float32
    qg = q.to(acc).reshape(B, Hkv, H // Hkv, Tq, D)
    s = torch.einsum("bgrqd,bgkd->bgrqk", qg, k.to(acc)) * scale
    keep = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril(Tk - Tq)
    s = s.masked_fill(~keep, -math.inf)
    o = torch.einsum("bgrqk,bgkd->bgrqd", s.softmax(-1), v.to(acc))
    return o.reshape(B, H, Tq, D).to(q.dtype)
