"""quantize_rowwise quantizes with torch into buffers of its own, then launches a kernel
over every element that reads x and copies the torch codes and scales into q and scale
(adding 0·x, so x is read too): the launches write every output, but compute nothing.
Target: quantization
Suite: hidden
Tasks: 1.3
Attacks: /test_(?!non_finite|unsupported)
Expect: not computed by the kernel's launches
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _copy(x_ptr, tq_ptr, ts_ptr, q_ptr, s_ptr, n_cols, stride_r, stride_c, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * stride_r + cols * stride_c, mask=mask, other=0.0).to(tl.float32)
    codes = tl.load(tq_ptr + row * n_cols + cols, mask=mask, other=0)
    tl.store(q_ptr + row * n_cols + cols, (codes.to(tl.float32) + 0.0 * x).to(tl.int8), mask=mask)
    tl.store(s_ptr + row, tl.load(ts_ptr + row))


def absmax_quantize(x, dim=None):
    raise NotImplementedError("Task 1.1")


def absmax_dequantize(q, scale):
    raise NotImplementedError("Task 1.2")


def quantize_rowwise(x):
    if x.dim() != 2 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError("x must be a 2-D fp16/bf16/fp32 matrix")
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise ValueError("x is empty or not finite")
    absmax = x.float().abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax > 0, absmax, 1.0)
    codes = torch.where(absmax > 0, torch.round(x.float() * 127 / safe), 0.0).to(torch.int8)
    q = torch.empty_like(codes)
    scale = torch.empty_like(absmax)
    _copy[(x.shape[0],)](x, codes, absmax / 127, q, scale, x.shape[1], x.stride(0), x.stride(1),
                         BLOCK=triton.next_power_of_2(x.shape[1]))
    return q, scale
