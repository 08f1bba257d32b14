"""A tiny decoder-only transformer that decodes with your KV cache (provided; do not edit).

Llama-shaped, small enough to read in one sitting:

    tokens -> embedding -> n_layers x [ x + attention(RMSNorm(x)), x + SwiGLU(RMSNorm(x)) ]
           -> RMSNorm -> logits = h @ embedding.T          (tied embeddings)

with rotary position embeddings (RoPE) on queries and keys, and grouped-query
attention (n_heads query heads share n_kv_heads key/value heads).

The model does not import your code: it is handed the module that provides
`KVCache` and `causal_attention`, so the same file runs with your cache.py, the
reference solution, or a plain float64 attention written by the tests:

    import cache, model
    net = model.TinyTransformer(model.Config(), cache)        # seeded, deterministic weights
    tokens = model.generate(net, prompt, max_new_tokens=20)   # greedy, with a KV cache
    same = model.generate(net, prompt, 20, use_cache=False)   # recomputes everything

Shapes: tokens [B, T] int64; logits [B, T, vocab_size].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Config:
    vocab_size: int = 96
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    d_ff: int = 64            # SwiGLU hidden size
    max_seq_len: int = 64     # longest sequence RoPE has angles for
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(config: Config) -> tuple[Tensor, Tensor]:
    """cos, sin [max_seq_len, head_dim / 2] of the angle pos * theta^(-2i / head_dim)."""
    half = config.head_dim // 2
    freq = config.rope_theta ** (-torch.arange(half, dtype=torch.float64) / half)
    angle = torch.arange(config.max_seq_len, dtype=torch.float64)[:, None] * freq
    return angle.cos().float(), angle.sin().float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each pair (x[..., i], x[..., i + D/2]) of x [B, H, T, D] by its position's angle.

    The score q_m · k_n then depends on the positions only through m - n, which
    is why cached keys (rotated once, at their own position) stay valid forever.
    """
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, config: Config, impl):
        super().__init__()
        self.config, self.impl = config, impl
        d, hd = config.d_model, config.head_dim
        self.wq = nn.Linear(d, config.n_heads * hd, bias=False)
        self.wk = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(d, config.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(config.n_heads * hd, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache=None) -> Tensor:
        batch, t, _ = x.shape
        hd = self.config.head_dim
        q = self.wq(x).view(batch, t, self.config.n_heads, hd).transpose(1, 2)   # [B, H, T, D]
        k = self.wk(x).view(batch, t, self.config.n_kv_heads, hd).transpose(1, 2)
        v = self.wv(x).view(batch, t, self.config.n_kv_heads, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            # New keys/values go into the cache; attention sees all positions so far.
            k, v = cache.update(k, v)
        out = self.impl.causal_attention(q, k, v)                                # [B, H, T, D]
        return self.wo(out.transpose(1, 2).reshape(batch, t, -1))


class SwiGLU(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.w_gate = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w_up = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.w_down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, config: Config, impl):
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config, impl)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, cache)
        return x + self.mlp(self.mlp_norm(x))


class TinyTransformer(nn.Module):
    """The model. `impl` is any module (or object) with KVCache and causal_attention.

    Weights are drawn from a generator seeded with `seed`, so every process
    that builds TinyTransformer(config, impl, seed) gets the same model.
    """

    def __init__(self, config: Config, impl, seed: int = 0):
        super().__init__()
        if config.d_model % config.n_heads or config.head_dim % 2:
            raise ValueError("d_model must split into n_heads heads of an even head_dim")
        self.config, self.impl = config, impl
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(Block(config, impl) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        cos, sin = rope_angles(config)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        # Unit-variance embeddings and 1/sqrt(fan_in) matrices keep activations
        # O(1), so logits are spread out and greedy choices are rarely near-ties.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    continue                                 # RMSNorm weights stay 1
                std = 1.0 if p is self.embed.weight else p.shape[1] ** -0.5
                p.copy_(torch.randn(p.shape, generator=generator) * std)

    def new_caches(self, batch_size: int, max_seq_len: int) -> list:
        """One empty KVCache per layer, in the model's dtype and on its device."""
        c, w = self.config, self.embed.weight
        return [self.impl.KVCache(batch_size, max_seq_len, c.n_kv_heads, c.head_dim,
                                  dtype=w.dtype, device=w.device) for _ in range(c.n_layers)]

    def forward(self, tokens: Tensor, caches: list | None = None) -> Tensor:
        """Logits [B, T, vocab] for tokens [B, T].

        Without caches the tokens are the whole sequence (positions 0..T-1).
        With caches they continue it: they sit at positions start..start+T-1,
        where start = caches[0].seq_len, and each layer appends its keys and
        values to its own cache.
        """
        start = caches[0].seq_len if caches is not None else 0
        t = tokens.shape[1]
        if start + t > self.config.max_seq_len:
            raise ValueError(f"positions up to {start + t} exceed max_seq_len "
                             f"{self.config.max_seq_len}")
        cos, sin = self.cos[start:start + t], self.sin[start:start + t]
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, caches[i] if caches is not None else None)
        return self.norm(x) @ self.embed.weight.T


@torch.no_grad()
def generate(model: TinyTransformer, prompt: Tensor, max_new_tokens: int,
             use_cache: bool = True, *, return_logits: bool = False):
    """Greedy decoding: append argmax(logits of the last position), max_new_tokens times.

    With the cache: one prefill pass over the prompt, then one decode pass per
    new token that feeds only that token (O(T) work per step). Without it:
    every step runs the whole sequence again (O(T^2) work per step).
    The cache holds exactly what is fed: the prompt and all new tokens but the last.

    Args:
        prompt: [B, T] int64 token ids, T >= 1.
    Returns:
        tokens [B, T + max_new_tokens]; with return_logits also the logits
        [B, max_new_tokens, vocab] each new token was chosen from.
    """
    tokens, chosen_from = prompt, []
    if use_cache:
        fed = prompt.shape[1] + max(max_new_tokens - 1, 0)
        caches = model.new_caches(prompt.shape[0], fed)
        step_input = prompt                                  # prefill: the whole prompt
    for _ in range(max_new_tokens):
        if use_cache:
            logits = model(step_input, caches)[:, -1]
        else:
            logits = model(tokens)[:, -1]                    # recompute every position
        next_token = logits.argmax(dim=-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
        chosen_from.append(logits)
        step_input = next_token                              # decode: one token at a time
    if return_logits:
        vocab = model.config.vocab_size
        logits = torch.stack(chosen_from, 1) if chosen_from else prompt.new_zeros(
            (prompt.shape[0], 0, vocab), dtype=model.embed.weight.dtype)
        return tokens, logits
    return tokens
