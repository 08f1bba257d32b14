"""Correct, but every call sleeps 15 s first: under the 20 s call timeout, so no call
ever times out, yet without a per-test budget each test costs 15 s a call and the
assignment its whole time budget (issue 13).
Expect: per-test time budget|not run again
"""

from __future__ import annotations

import functools
import os
import time

import torch
import triton
import triton.language as tl
from torch import Tensor

QMAX = 127  # symmetric int8 range [-127, 127]: -128 has no positive twin

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check_quantizable(x: Tensor, name: str = "x") -> None:
    """Raise unless `x` is a non-empty, finite, floating tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be fp16, bf16, fp32 or fp64, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {list(x.shape)})")
    # fp64 values beyond float32's range would become inf in the float32 maths below.
    if not torch.isfinite(x.to(torch.float32)).all():
        raise ValueError(f"{name} has nan or inf values (or values not finite in float32)")


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
    _check_quantizable(x)
    if dim is not None:
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be None or an int, got {type(dim).__name__}")
        if x.dim() == 0 or not -x.dim() <= dim < x.dim():
            raise ValueError(f"dim={dim} is out of range for a {x.dim()}-d tensor")

    x32 = x.to(torch.float32)
    if dim is None:
        absmax = x32.abs().amax()
    else:
        absmax = x32.abs().amax(dim=dim, keepdim=True)

    v = (x32 * QMAX) / absmax  # nan where absmax == 0; replaced below
    q = torch.where(absmax > 0, torch.round(v), 0.0)  # torch.round is half-to-even
    q = q.clamp(-QMAX, QMAX).to(torch.int8)
    return q, absmax / QMAX


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
    if not isinstance(q, Tensor) or not isinstance(scale, Tensor):
        raise TypeError("q and scale must be torch.Tensors")
    if q.dtype != torch.int8:
        raise ValueError(f"q must be int8, got {q.dtype}")
    if not scale.is_floating_point():
        raise ValueError(f"scale must be a floating tensor, got {scale.dtype}")
    if q.device != scale.device:
        raise ValueError(f"q is on {q.device} but scale is on {scale.device}")
    try:
        broadcast = torch.broadcast_shapes(q.shape, scale.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != q.shape:
        raise ValueError(
            f"scale of shape {list(scale.shape)} does not broadcast to q's shape {list(q.shape)}"
        )
    return q.to(torch.float32) * scale.to(torch.float32)


# 1.5 * 2^23: adding then subtracting it rounds a float32 with |v| < 2^22 to the
# nearest integer, ties to even, by the hardware's own rounding of the addition.
_ROUND_MAGIC = tl.constexpr(12582912.0)


@triton.jit
def _abs_nan_as_inf(x):
    """|x| with nan mapped to +inf: a nan anywhere in a row makes its scale
    non-finite, which the launcher turns into a ValueError without re-reading x."""
    return tl.where(x == x, tl.abs(x), float("inf"))


@triton.jit
def _codes(x, amax):
    """int8 codes round(127 * x / amax) of a float32 tile [BLOCK_M, BLOCK_N],
    amax [BLOCK_M]; an all-zero row (amax == 0) gets zeros, not 0/0."""
    safe_amax = tl.where(amax > 0, amax, 1.0)[:, None]
    v = tl.math.div_rn(x * 127.0, safe_amax)  # IEEE division, as in the eager version
    v = (v + _ROUND_MAGIC) - _ROUND_MAGIC      # round half to even
    v = tl.minimum(tl.maximum(v, -127.0), 127.0)
    return v.to(tl.int8)


@triton.jit
def _quantize_rows_kernel(
    x_ptr, q_ptr, scale_ptr,
    n_rows, n_cols,
    stride_x_row, stride_x_col, stride_q_row,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ONE_TILE: tl.constexpr,
):
    """Quantize BLOCK_M rows of x, BLOCK_N columns at a time."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    cols = tl.arange(0, BLOCK_N)
    x_rows = x_ptr + rows[:, None].to(tl.int64) * stride_x_row
    q_rows = q_ptr + rows[:, None].to(tl.int64) * stride_q_row

    if ONE_TILE:
        # Fast path: the whole row fits in one tile, so x is read from memory once.
        mask = row_ok[:, None] & (cols[None, :] < n_cols)
        x = tl.load(x_rows + cols[None, :] * stride_x_col, mask=mask, other=0.0).to(tl.float32)
        amax = tl.max(_abs_nan_as_inf(x), axis=1)
        tl.store(q_rows + cols[None, :], _codes(x, amax), mask=mask)
    else:
        # Pass 1: each row's absolute maximum, one tile of columns at a time.
        amax = tl.zeros([BLOCK_M], dtype=tl.float32)
        for start in range(0, n_cols, BLOCK_N):
            mask = row_ok[:, None] & (start + cols[None, :] < n_cols)
            x = tl.load(x_rows + (start + cols[None, :]) * stride_x_col, mask=mask, other=0.0)
            amax = tl.maximum(amax, tl.max(_abs_nan_as_inf(x.to(tl.float32)), axis=1))
        # Pass 2: read the row again (now mostly from L2), scale and round.
        for start in range(0, n_cols, BLOCK_N):
            mask = row_ok[:, None] & (start + cols[None, :] < n_cols)
            x = tl.load(x_rows + (start + cols[None, :]) * stride_x_col, mask=mask, other=0.0)
            tl.store(q_rows + start + cols[None, :], _codes(x.to(tl.float32), amax), mask=mask)
    tl.store(scale_ptr + rows, amax / 127.0, mask=row_ok)


def _tile_shape(n_cols: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps) for rows of n_cols columns.

    A tile holds about 4096 elements or one whole row of up to 16384 columns, so
    most rows are read from memory once (ONE_TILE); short rows are packed several
    to a program so each program moves a worthwhile amount of memory. About 32
    elements per thread keeps the tile in registers.
    """
    block_n = min(triton.next_power_of_2(n_cols), 16384)
    block_m = max(1, 4096 // block_n)
    num_warps = max(4, min(16, block_m * block_n // 1024))
    return block_m, block_n, num_warps


def _launch_quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Allocate the outputs and launch the kernel on a valid [M, N] tensor (no checks)."""
    n_rows, n_cols = x.shape
    q = torch.empty((n_rows, n_cols), dtype=torch.int8, device=x.device)
    scale = torch.empty((n_rows, 1), dtype=torch.float32, device=x.device)
    block_m, block_n, num_warps = _tile_shape(n_cols)
    grid = (triton.cdiv(n_rows, block_m),)
    _quantize_rows_kernel[grid](
        x, q, scale, n_rows, n_cols, x.stride(0), x.stride(1), q.stride(0),
        BLOCK_M=block_m, BLOCK_N=block_n, ONE_TILE=n_cols <= block_n, num_warps=num_warps,
    )
    return q, scale


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
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [M, N], got {x.dim()}-D")
    if x.dtype not in KERNEL_DTYPES:
        raise ValueError(f"x must be fp16, bf16 or fp32, got {x.dtype}")
    n_rows, n_cols = x.shape
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"x is empty (shape {list(x.shape)})")
    if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(f"x is on {x.device}: compiled Triton kernels need a CUDA tensor")

    q, scale = _launch_quantize_rows(x)
    # The one host-device synchronisation: a ValueError needs the answer on the host.
    if not torch.isfinite(scale).all():
        raise ValueError("x has nan or inf values")
    return q, scale


SLEEP_S = 15  # under quantization's call_timeout_s (20 s): each call alone is "in time"


def _slowly(function):
    @functools.wraps(function)
    def slow(*args, **kwargs):
        time.sleep(SLEEP_S)
        return function(*args, **kwargs)
    return slow


absmax_quantize = _slowly(absmax_quantize)
absmax_dequantize = _slowly(absmax_dequantize)
quantize_rowwise = _slowly(quantize_rowwise)
