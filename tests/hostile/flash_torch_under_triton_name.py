"""Computes attention and its gradients with torch in float64, in code compiled under a
file name inside Triton's package (instruments that ask "is this frame Triton's?" by file
name skip it), and launches a one-program kernel that is handed q, k, v and o but only
rewrites one element of o with itself, in forward and backward. Every number is right;
no kernel does any of the work.
Target: flash_attention
Suite: hidden
Attacks: no_score_sized_tensor|kernel|launches_triton_kernels
Expect: kernel
"""

import math
import os

import torch
import triton
import triton.language as tl

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _nothing(q_ptr, k_ptr, v_ptr, o_ptr):
    tl.store(o_ptr, tl.load(o_ptr))


def _launch_nothing(q, k, v, o):
    _nothing[(1,)](q, k, v, o)


SOURCE = '''
def attention(q, k, v, causal, scale):
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        s = s.masked_fill(j > i + (k.shape[2] - q.shape[2]), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(torch.isinf(lse), 0.0, lse)[..., None])
    return (p @ v.double()).to(q.dtype), lse.float()


def gradients(q, k, v, do, causal, scale):
    with torch.enable_grad():
        q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
        o, _ = attention(q64, k64, v64, causal, scale)
        o.double().backward(do.double())
    return q64.grad.to(q.dtype), k64.grad.to(q.dtype), v64.grad.to(q.dtype)
'''
_hidden = {"torch": torch}
exec(compile(SOURCE, os.path.join(os.path.dirname(triton.__file__), "language", "extra.py"),
             "exec"), _hidden)


def _check(q, k, v, sm_scale):
    for t in (q, k, v):
        if t.dim() != 4 or t.dtype not in DTYPES:
            raise ValueError("q, k, v must be 4-D fp16/bf16/fp32")
    if k.dtype != q.dtype or v.dtype != q.dtype or k.shape != v.shape:
        raise ValueError("q, k, v do not fit")
    if k.shape[:2] != q.shape[:2] or k.shape[3] != q.shape[3] or q.shape[3] not in HEAD_DIMS:
        raise ValueError("q, k, v do not fit")
    if min(q.shape[2], k.shape[2]) < 1:
        raise ValueError("empty")
    return 1 / math.sqrt(q.shape[3]) if sm_scale is None else sm_scale


def flash_attention_forward(q, k, v, *, causal=False, sm_scale=None):
    scale = _check(q, k, v, sm_scale)
    o, lse = _hidden["attention"](q, k, v, causal, scale)
    _launch_nothing(q, k, v, o)
    return o, lse


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale):
        ctx.save_for_backward(q, k, v)
        ctx.causal, ctx.scale = causal, scale
        o = _hidden["attention"](q, k, v, causal, scale)[0]
        _launch_nothing(q, k, v, o)
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        dq, dk, dv = _hidden["gradients"](q, k, v, do, ctx.causal, ctx.scale)
        _launch_nothing(q, k, v, dq)
        return dq, dk, dv, None, None


def flash_attention(q, k, v, *, causal=False, sm_scale=None):
    return _Attention.apply(q, k, v, causal, _check(q, k, v, sm_scale))
