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


### BEGIN SOLUTION
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
### END SOLUTION


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
    ### BEGIN SOLUTION
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
    ### END SOLUTION


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
    ### BEGIN SOLUTION
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
    ### END SOLUTION


### BEGIN SOLUTION
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


# Split rows across programs when there are too few rows to fill the GPU. One
# program per row starts only n_rows programs: with fewer rows than a GPU has SMs
# (108 on an A100, 132 on an H100) some SMs get none and the others one, too few
# loads in flight to keep memory busy (8 rows leave 124 of an H100's SMs idle).
# Rows of two or more 16384-column tiles are read twice by the row kernel anyway,
# so splitting them costs one more launch and a small buffer of partial maxima,
# not another pass over x.
_SPLIT_MAX_ROWS = 128      # split when n_rows <= this ...
_SPLIT_MIN_COLS = 32768    # ... and n_cols >= this
_SPLIT_BLOCK_N = 4096      # columns per tile in the split kernels: 32 per thread at 4 warps
_SPLIT_MAX_CHUNKS = 256    # chunks per row, so that pass 2 loads a row's partials as one tile


@triton.jit
def _chunk_absmax_kernel(
    x_ptr, partial_ptr,
    n_cols, chunk_cols,
    stride_x_row, stride_x_col,
    BLOCK_N: tl.constexpr,
):
    """Split rows, pass 1: program (chunk, row) writes partial[row, chunk], the max|x|
    of its chunk of chunk_cols columns (a whole number of BLOCK_N tiles)."""
    chunk, row = tl.program_id(0), tl.program_id(1)
    cols = chunk * chunk_cols + tl.arange(0, BLOCK_N)
    x_row = x_ptr + row.to(tl.int64) * stride_x_row
    # An elementwise max across the chunk's tiles, reduced to one number at the end.
    amax = tl.zeros([BLOCK_N], dtype=tl.float32)
    for start in range(0, chunk_cols, BLOCK_N):
        mask = start + cols < n_cols
        x = tl.load(x_row + (start + cols) * stride_x_col, mask=mask, other=0.0)
        amax = tl.maximum(amax, _abs_nan_as_inf(x.to(tl.float32)))
    tl.store(partial_ptr + row * tl.num_programs(0) + chunk, tl.max(amax, axis=0))


@triton.jit
def _quantize_chunks_kernel(
    x_ptr, q_ptr, scale_ptr, partial_ptr,
    n_cols, chunk_cols,
    stride_x_row, stride_x_col, stride_q_row,
    BLOCK_N: tl.constexpr, MAX_CHUNKS: tl.constexpr,
):
    """Split rows, pass 2: program (chunk, row) takes its row's absmax from the partial
    maxima of pass 1, writes the codes of its chunk, and chunk 0 writes the scale."""
    chunk, n_chunks = tl.program_id(0), tl.num_programs(0)
    rows = tl.program_id(1) + tl.arange(0, 1)  # a block of one row: the shapes _codes takes
    # The row's absmax is the max of its chunks' maxima: exact, in any order.
    k = tl.arange(0, MAX_CHUNKS)[None, :]
    partials = tl.load(partial_ptr + rows[:, None] * n_chunks + k, mask=k < n_chunks, other=0.0)
    amax = tl.max(partials, axis=1)
    cols = chunk * chunk_cols + tl.arange(0, BLOCK_N)[None, :]
    x_row = x_ptr + rows[:, None].to(tl.int64) * stride_x_row
    q_row = q_ptr + rows[:, None].to(tl.int64) * stride_q_row
    for start in range(0, chunk_cols, BLOCK_N):
        mask = start + cols < n_cols
        x = tl.load(x_row + (start + cols) * stride_x_col, mask=mask, other=0.0)
        tl.store(q_row + start + cols, _codes(x.to(tl.float32), amax), mask=mask)
    if chunk == 0:  # one writer per row
        tl.store(scale_ptr + rows, amax / 127.0)


def _launch_split_rows(x: Tensor, q: Tensor, scale: Tensor) -> None:
    """Quantize x into q and scale with (chunk, row) programs: two launches, nothing between.

    A chunk is one tile, or a few where a row has more than _SPLIT_MAX_CHUNKS tiles.
    """
    n_rows, n_cols = x.shape
    n_tiles = triton.cdiv(n_cols, _SPLIT_BLOCK_N)
    chunk_cols = triton.cdiv(n_tiles, _SPLIT_MAX_CHUNKS) * _SPLIT_BLOCK_N
    n_chunks = triton.cdiv(n_cols, chunk_cols)
    partial = torch.empty((n_rows, n_chunks), dtype=torch.float32, device=x.device)
    grid = (n_chunks, n_rows)  # a row's chunks are neighbours in launch order
    _chunk_absmax_kernel[grid](
        x, partial, n_cols, chunk_cols, x.stride(0), x.stride(1),
        BLOCK_N=_SPLIT_BLOCK_N, num_warps=4,
    )
    _quantize_chunks_kernel[grid](
        x, q, scale, partial, n_cols, chunk_cols, x.stride(0), x.stride(1), q.stride(0),
        BLOCK_N=_SPLIT_BLOCK_N, MAX_CHUNKS=_SPLIT_MAX_CHUNKS, num_warps=4,
    )


def _launch_quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Allocate the outputs and launch the kernels on a valid [M, N] tensor (no checks)."""
    n_rows, n_cols = x.shape
    q = torch.empty((n_rows, n_cols), dtype=torch.int8, device=x.device)
    scale = torch.empty((n_rows, 1), dtype=torch.float32, device=x.device)
    if n_rows <= _SPLIT_MAX_ROWS and n_cols >= _SPLIT_MIN_COLS:
        _launch_split_rows(x, q, scale)  # few, long rows: several programs per row
        return q, scale
    block_m, block_n, num_warps = _tile_shape(n_cols)
    grid = (triton.cdiv(n_rows, block_m),)
    _quantize_rows_kernel[grid](
        x, q, scale, n_rows, n_cols, x.stride(0), x.stride(1), q.stride(0),
        BLOCK_M=block_m, BLOCK_N=block_n, ONE_TILE=n_cols <= block_n, num_warps=num_warps,
    )
    return q, scale
### END SOLUTION


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
    ### BEGIN SOLUTION
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
    ### END SOLUTION

