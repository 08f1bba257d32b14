"""Assignment 1: absmax int8 quantization, eager and as a Triton kernel.

You implement three functions (see README.md beside this file):

    Task 1.1  absmax_quantize    x -> (q int8, scale float32), per tensor or per slice
    Task 1.2  absmax_dequantize  (q, scale) -> q * scale
    Task 1.3  quantize_rowwise   the per-row version as one Triton kernel

Run the public tests with `grader test quantization` (or plain `pytest
assignments/quantization`). On a machine without a GPU the kernel runs in
Triton's interpreter (TRITON_INTERPRET=1, set for you by the test setup).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

QMAX = 127  # symmetric int8 range [-127, 127]: -128 has no positive twin

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


# Task 1.1: helper code for absmax_quantize goes here (see README.md).


def absmax_quantize(x: Tensor, dim: int | None = None) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantization with an absolute-maximum scale.

        absmax = max|x|                 (per tensor, or per slice along `dim`)
        scale  = absmax / 127
        q      = round(127 * x / absmax)   int8 in [-127, 127], half-to-even

    All arithmetic is float32, in this order: v = fl32(fl32(127 * x) / absmax).
    Where absmax == 0 (an all-zero tensor or slice), q = 0 and scale = 0.

    Args:
        x:   floating tensor (fp16, bf16, fp32, fp64), any shape, at least one element.
        dim: None for one scale for the whole tensor; an int (negative allowed) to
             reduce along that dim, giving one scale per slice along the other dims.
    Returns:
        (q, scale): q int8 with x's shape; scale float32, 0-d when dim is None,
        else x's shape with size 1 at `dim` (keepdim).
    Raises:
        ValueError: empty, non-floating or non-finite input; dim out of range.
        TypeError:  x not a tensor, dim not an int.

    Example: [0.5, 20, -0.0001, -0.01, -0.1] -> q = [3, 127, 0, 0, -1], scale = 20/127.
    """
    raise NotImplementedError("Task 1.1: implement absmax_quantize (see README.md)")


def absmax_dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """Map int8 codes back to real numbers: x_hat = q * scale (float32).

    Args:
        q:     int8 tensor of codes.
        scale: float tensor that broadcasts to q's shape (the scale returned by
               absmax_quantize: 0-d, or with size 1 at the quantized dim).
    Returns:
        float32 tensor with q's shape.
    Raises:
        ValueError: q not int8, scale not floating, or scale does not broadcast to q.
    """
    raise NotImplementedError("Task 1.2: implement absmax_dequantize (see README.md)")


# Task 1.3: helper code for quantize_rowwise goes here (see README.md).


def quantize_rowwise(x: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise absmax int8 quantization of a 2-D tensor, by a Triton kernel.

    Same result as absmax_quantize(x, dim=1): q int8 [M, N], scale float32 [M, 1].
    The kernel must handle any N >= 1 (loop over column tiles when a row is
    longer than one tile) and any strides (x may be transposed or sliced).

    Args:
        x: [M, N] tensor, fp16, bf16 or fp32, M, N >= 1, any strides.
    Returns:
        (q, scale): q int8 [M, N] (contiguous), scale float32 [M, 1].
    Raises:
        ValueError: other ranks or dtypes (fp64 included), empty or non-finite input.
    """
    raise NotImplementedError("Task 1.3: implement quantize_rowwise (see README.md)")

