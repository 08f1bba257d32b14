"""quantize_rowwise runs a real kernel for each row's absmax and scale, then computes the
codes with torch after it: half the work is a kernel's, the codes the tests check are not.
Target: quantization
Suite: hidden
Tasks: 1.3
Attacks: /test_(?!non_finite|unsupported)
Expect: returned tensor 1 .* is not in memory any launch wrote
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _scales(x_ptr, s_ptr, n_cols, stride_r, stride_c, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    amax = tl.zeros([BLOCK], dtype=tl.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * stride_r + cols * stride_c, mask=cols < n_cols, other=0.0)
        amax = tl.maximum(amax, tl.abs(x.to(tl.float32)))
    tl.store(s_ptr + row, tl.max(amax, axis=0) / 127.0)


def absmax_quantize(x, dim=None):
    raise NotImplementedError("Task 1.1")


def absmax_dequantize(q, scale):
    raise NotImplementedError("Task 1.2")


def quantize_rowwise(x):
    if x.dim() != 2 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError("x must be a 2-D fp16/bf16/fp32 matrix")
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise ValueError("x is empty or not finite")
    scale = torch.empty(x.shape[0], 1, dtype=torch.float32, device=x.device)
    _scales[(x.shape[0],)](x, scale, x.shape[1], x.stride(0), x.stride(1), BLOCK=1024)
    absmax = x.float().abs().amax(dim=1, keepdim=True)
    safe = torch.where(absmax > 0, absmax, 1.0)
    q = torch.where(absmax > 0, torch.round(x.float() * 127 / safe), 0.0).to(torch.int8)
    return q, scale
