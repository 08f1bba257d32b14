import math
import torch


class KVCache:
    def __init__(self, batch_size, max_seq_len, n_kv_heads, head_dim, *, dtype=torch.float32, device="cpu"):
        args = [batch_size, max_seq_len, n_kv_heads, head_dim]
        if any(isinstance(a, bool) or not isinstance(a, int) for a in args):
            raise TypeError("sizes must be ints")
        if min(args) < 1:
            raise ValueError("sizes must be >= 1")
        if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            raise ValueError("unsupported dtype")
        self.B, self.T, self.G, self.D = args
        self.k_cache = torch.zeros(self.B, self.G, self.T, self.D, dtype=dtype, device=device)
        self.v_cache = torch.zeros(self.B, self.G, self.T, self.D, dtype=dtype, device=device)
        self.seq_len = 0

    max_seq_len = property(lambda self: self.T)

    def update(self, k, v):
        for t in (k, v):
            if tuple(t.shape[:2]) + tuple(t.shape[3:]) != (self.B, self.G, self.D):
                raise ValueError("shape")
            if t.dtype is not self.k_cache.dtype:
                raise ValueError("dtype")
            if str(t.device) != str(self.k_cache.device):
                raise ValueError("device")
        if k.shape != v.shape:
            raise ValueError("k and v")
        pos = self.seq_len
        count = k.shape[2]
        if pos + count > self.T:
            raise ValueError("no room")
        idx = torch.arange(pos, pos + count, device=k.device)
        self.k_cache.index_copy_(2, idx, k)
        self.v_cache.index_copy_(2, idx, v)
        self.seq_len = pos + count
        return self.k_cache[..., :self.seq_len, :], self.v_cache[..., :self.seq_len, :]

    def reset(self):
        self.seq_len = 0


def causal_attention(q, k, v, *, sm_scale=None):
    if len(q.shape) != 4 or len(k.shape) != 4 or k.shape != v.shape:
        raise ValueError("shapes")
    if len({q.dtype, k.dtype, v.dtype}) > 1 or len({q.device, k.device, v.device}) > 1:
        raise ValueError("dtype/device")
    b, h, n, d = q.shape
    _, g, m, _ = k.shape
    if k.shape[0] != b or k.shape[3] != d or h % g or n > m:
        raise ValueError("mismatch")
    c = 1 / math.sqrt(d) if sm_scale is None else sm_scale
    hp = torch.float64 if q.dtype == torch.float64 else torch.float32
    outs = []
    for head in range(h):
        kh = k[:, head // (h // g)].to(hp)
        vh = v[:, head // (h // g)].to(hp)
        w = q[:, head].to(hp) @ kh.transpose(1, 2) * c
        w = w + torch.full((n, m), float("-inf"), dtype=hp, device=q.device).triu(m - n + 1)
        outs.append(torch.softmax(w, -1) @ vh)
    return torch.stack(outs, 1).to(q.dtype)
