"""quantize_rowwise quantizes with torch, then launches a one-program kernel that is handed
x, q and scale but only rewrites one code with itself: a launch is counted, x, q and scale
are kernel arguments, yet no kernel computes anything.
Target: quantization
Suite: hidden
Attacks: triton_kernel
Expect: replayed
"""

import torch
import triton
import triton.language as tl


@triton.jit
def _touch(x_ptr, q_ptr, scale_ptr):
    tl.store(q_ptr, tl.load(q_ptr))


def absmax_quantize(x, dim=None):
    raise NotImplementedError("Task 1.1")


def absmax_dequantize(q, scale):
    raise NotImplementedError("Task 1.2")


def quantize_rowwise(x):
    if x.dim() != 2 or x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError("x must be a 2-D fp16/bf16/fp32 matrix")
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise ValueError("x is empty or not finite")
    scale = x.float().abs().amax(dim=1, keepdim=True) / 127
    safe = torch.where(scale > 0, scale, 1.0)
    q = torch.round(x.float() / safe).to(torch.int8)
    _touch[(1,)](x, q, scale)
    return q, scale
