import torch
import torch.nn.functional as F


class KVCache:
    """Static cache; validation in one big method."""

    def __init__(self, batch_size, max_seq_len, n_kv_heads, head_dim, *,
                 dtype=torch.float32, device="cpu"):
        sizes = dict(batch_size=batch_size, max_seq_len=max_seq_len,
                     n_kv_heads=n_kv_heads, head_dim=head_dim)
        for key in sizes:
            if not isinstance(sizes[key], int) or isinstance(sizes[key], bool):
                raise TypeError(f"{key}: int expected")
            if sizes[key] < 1:
                raise ValueError(f"{key}: at least 1")
        if not torch.is_floating_point(torch.zeros((), dtype=dtype)):
            raise ValueError("floating dtype required")
        self.store = torch.zeros(2, batch_size, n_kv_heads, max_seq_len, head_dim,
                                 dtype=dtype, device=device)
        self.k_cache, self.v_cache = self.store[0], self.store[1]
        self.seq_len = 0

    @property
    def max_seq_len(self):
        return self.store.shape[3]

    def update(self, k, v):
        ref = self.k_cache
        ok = (
            k.dim() == 4 and k.shape == v.shape
            and k.shape[0] == ref.shape[0] and k.shape[1] == ref.shape[1]
            and k.shape[3] == ref.shape[3]
            and k.dtype == v.dtype == ref.dtype and k.device == v.device == ref.device
        )
        if not ok:
            raise ValueError("k, v do not match the cache")
        new_len = self.seq_len + k.shape[2]
        if new_len > self.max_seq_len:
            raise ValueError("overflow")
        self.store[0, :, :, self.seq_len:new_len] = k
        self.store[1, :, :, self.seq_len:new_len] = v
        self.seq_len = new_len
        return self.store[0, :, :, :new_len], self.store[1, :, :, :new_len]

    def reset(self):
        self.seq_len = 0


def causal_attention(q, k, v, *, sm_scale=None):
    if q.dim() != 4 or k.dim() != 4 or v.shape != k.shape:
        raise ValueError("4-D inputs with matching k and v")
    if q.dtype != k.dtype or q.dtype != v.dtype or q.device != k.device or q.device != v.device:
        raise ValueError("dtype or device differ")
    if q.size(0) != k.size(0) or q.size(3) != k.size(3):
        raise ValueError("batch or head dim differ")
    if q.size(1) % k.size(1) != 0 or q.size(2) > k.size(2):
        raise ValueError("heads or lengths incompatible")
    tq, tk = q.size(2), k.size(2)
    mask = torch.arange(tk, device=q.device)[None, :] <= torch.arange(tq, device=q.device)[:, None] + (tk - tq)
    up = torch.float64 if q.dtype == torch.float64 else torch.float32
    out = F.scaled_dot_product_attention(q.to(up), k.to(up), v.to(up), attn_mask=mask,
                                         scale=sm_scale, enable_gqa=True)
    return out.to(q.dtype)
