r"""A Triton backward in name only: the gradients are computed with torch by broadcast
products and sums (no matmul op, so no "torch matrix product" is seen), and backward()
launches a one-program kernel that is handed q, k, v and dq and rewrites one element of dq
with itself. The forward is the real reference kernel's idea in torch (not graded here).
Target: flash_attention
Suite: hidden
Tasks: 4.4
Attacks: flash_attention/test_backward_launches_triton_kernels
Expect: backward\(\): the returned values were not computed by the kernel's launches
"""

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _touch(q_ptr, k_ptr, v_ptr, dq_ptr):
    tl.store(dq_ptr, tl.load(dq_ptr))


def _scores(q, k, scale, causal):
    s = (q.double()[..., :, None, :] * k.double()[..., None, :, :]).sum(-1) * scale
    if causal:
        i = torch.arange(q.shape[2], device=q.device)[:, None]
        j = torch.arange(k.shape[2], device=q.device)[None, :]
        s = s.masked_fill(j > i + (k.shape[2] - q.shape[2]), float("-inf"))
    return s


def _probabilities(q, k, scale, causal):
    s = _scores(q, k, scale, causal)
    m = s.amax(-1, keepdim=True).clamp(min=-1e300)
    e = torch.exp(s - m)
    return e / e.sum(-1, keepdim=True).clamp(min=1e-300)


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal, scale):
        p = _probabilities(q, k, scale, causal)
        ctx.save_for_backward(q, k, v)
        ctx.causal, ctx.scale = causal, scale
        return (p[..., :, :, None] * v.double()[..., None, :, :]).sum(-2).to(q.dtype)

    @staticmethod
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        p = _probabilities(q, k, ctx.scale, ctx.causal)
        do64 = do.double()
        dv = (p[..., :, :, None] * do64[..., :, None, :]).sum(-3)
        dp = (do64[..., :, None, :] * v.double()[..., None, :, :]).sum(-1)
        ds = p * (dp - (dp * p).sum(-1, keepdim=True))
        dq = (ds[..., :, :, None] * k.double()[..., None, :, :]).sum(-2) * ctx.scale
        dk = (ds[..., :, :, None] * q.double()[..., :, None, :]).sum(-3) * ctx.scale
        dq, dk, dv = dq.to(q.dtype), dk.to(q.dtype), dv.to(q.dtype)
        _touch[(1,)](q, k, v, dq)
        return dq, dk, dv, None, None


def flash_attention_forward(q, k, v, *, causal=False, sm_scale=None):
    raise NotImplementedError("Task 4.1")


def flash_attention(q, k, v, *, causal=False, sm_scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    return _Attention.apply(q, k, v, causal, scale)
