"""quantize_rowwise's kernel is real, but it works only while a flag in memory says so: the
first launch quantizes and sets the flag, every later launch returns at once, and from the
second call on torch writes the answer into q and scale before the (idle) launch. The first
call is the kernels'; every later one is torch's.
Target: quantization
Suite: hidden
Tasks: 1.3
Attacks: /test_(?!non_finite|unsupported)
Expect: not computed by the kernel's launches
"""

import torch
import triton
import triton.language as tl

_DONE = {}


@triton.jit
def _quantize(x_ptr, q_ptr, s_ptr, flag_ptr, n_cols, stride_r, stride_c, BLOCK: tl.constexpr):
    if tl.load(flag_ptr) == 0:
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(x_ptr + row * stride_r + cols * stride_c, mask=mask, other=0.0)
        x = x.to(tl.float32)
        amax = tl.max(tl.abs(x), axis=0)
        v = tl.math.div_rn(x * 127.0, tl.where(amax > 0, amax, 1.0))
        v = (v + 12582912.0) - 12582912.0
        tl.store(q_ptr + row * n_cols + cols, v.to(tl.int8), mask=mask)
        tl.store(s_ptr + row, amax / 127.0)
        tl.debug_barrier()
        tl.store(flag_ptr, 1, mask=row == tl.num_programs(0) - 1)


def absmax_quantize(x, dim=None):
    raise NotImplementedError("Task 1.1")


def absmax_dequantize(q, scale):
    raise NotImplementedError("Task 1.2")


def quantize_rowwise(x):
    if x.dim() != 2 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError("x must be a 2-D fp16/bf16/fp32 matrix")
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise ValueError("x is empty or not finite")
    flag = _DONE.setdefault(x.device, torch.zeros(1, dtype=torch.int32, device=x.device))
    q = torch.empty(x.shape, dtype=torch.int8, device=x.device)
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    if int(flag.item()):
        absmax = x.float().abs().amax(dim=1, keepdim=True)
        safe = torch.where(absmax > 0, absmax, 1.0)
        q.copy_(torch.where(absmax > 0, torch.round(x.float() * 127 / safe), 0.0))
        scale.copy_(absmax / 127)
    _quantize[(x.shape[0],)](x, q, scale, flag, x.shape[1], x.stride(0), x.stride(1),
                             BLOCK=triton.next_power_of_2(x.shape[1]))
    return q, scale
