"""Hypothesis strategies for tensors, shared by every assignment's tests.

Design choices, each from a bug seen in the wild:
- sizes differ between dimensions (a transposed axis cannot hide);
- small tensors are drawn element by element, so hypothesis shrinks them to a
  readable minimal example; large ones (kernel tails, several column tiles)
  come from a drawn seed;
- magnitudes span a wide range of exponents around a drawn centre, with zeros;
- layouts include transposed and strided views, not only contiguous tensors.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Compiled Triton kernels need CUDA tensors; the interpreter takes CPU tensors.
KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# Exponents e with 2^e, 2^(e+1) comfortably normal in the dtype (SPEC §3.1 draws
# |x| from [2^-100, 2^100]; fp16's normal range is only [2^-14, 2^16)).
EXPONENTS = {
    torch.float16: (-14, 14),
    torch.bfloat16: (-100, 99),
    torch.float32: (-100, 99),
    torch.float64: (-100, 99),
}
ELEMENTWISE_LIMIT = 64
LAYOUTS = ("contiguous", "transposed", "sliced")


@st.composite
def shapes(draw, min_dims=1, max_dims=3, min_side=1, max_side=8, distinct=True):
    """A shape whose sizes differ from one another when they can."""
    ndim = draw(st.integers(min_dims, max_dims))
    sides = st.integers(min_side, max_side)
    if distinct and max_side - min_side + 1 >= ndim:
        return tuple(draw(st.lists(sides, min_size=ndim, max_size=ndim, unique=True)))
    return tuple(draw(st.lists(sides, min_size=ndim, max_size=ndim)))


@st.composite
def float_tensors(draw, dtypes=FLOAT_DTYPES, shape=None, layouts=LAYOUTS, zeros=True,
                  max_spread=24, device="cpu"):
    """A floating tensor: drawn dtype, shape and layout; values ±m·2^e, some zeros.

    `shape`: a tuple, or a strategy for one (default: shapes()).
    `device`: where the tensor lives (KERNEL_DEVICE for tests of Triton kernels).
    """
    dtype = draw(st.sampled_from(dtypes))
    size = shape if isinstance(shape, tuple) else draw(shape if shape is not None else shapes())
    lo, hi = EXPONENTS[dtype]
    # Mostly moderate magnitudes (readable), sometimes anywhere in the dtype's range.
    centre = draw(st.integers(max(lo, -8), min(hi, 8)) | st.integers(lo, hi))
    spread = draw(st.integers(0, max_spread))
    e_lo, e_hi = max(lo, centre - spread), min(hi, centre + spread)
    n = math.prod(size)
    if n <= ELEMENTWISE_LIMIT:
        element = _elements(e_lo, e_hi, zeros)
        values = draw(st.lists(element, min_size=n, max_size=n))
        tensor = torch.tensor(values, dtype=torch.float64).reshape(size).to(dtype)
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        tensor = _seeded_values(size, e_lo, e_hi, zeros, seed).to(dtype)
    layout = draw(st.sampled_from(layouts if tensor.dim() >= 1 else ("contiguous",)))
    return with_layout(tensor.to(device), layout)


def _elements(e_lo: int, e_hi: int, zeros: bool):
    nonzero = st.builds(
        lambda sign, m, e: sign * m * 2.0**e,
        st.sampled_from([1.0, -1.0]),
        st.floats(1.0, 2.0, exclude_max=True),
        st.integers(e_lo, e_hi),
    )
    return (st.just(0.0) | nonzero) if zeros else nonzero


def _seeded_values(size, e_lo, e_hi, zeros, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    exponent = torch.randint(e_lo, e_hi + 1, size, generator=g).double()
    mantissa = 1.0 + torch.rand(size, generator=g, dtype=torch.float64)
    sign = torch.where(torch.rand(size, generator=g) < 0.5, -1.0, 1.0).double()
    values = sign * mantissa * torch.exp2(exponent)
    if zeros:
        values[torch.rand(size, generator=g) < 0.05] = 0.0
    return values


def with_layout(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory layout (strides), not a copy in disguise."""
    if layout == "contiguous" or tensor.dim() == 0:
        return tensor.contiguous()
    if layout == "transposed":
        if tensor.dim() < 2:
            return with_layout(tensor, "sliced")
        storage = tensor.transpose(0, -1).contiguous()
        return storage.transpose(0, -1)
    if layout == "sliced":
        # every other element of a tensor twice as large along the last dim
        big = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype,
                          device=tensor.device)
        big[..., ::2] = tensor
        return big[..., ::2]
    raise ValueError(f"unknown layout {layout!r}")


@st.composite
def matrix_shapes(draw, max_rows=6, max_cols=9, min_cols=1):
    """(M, N) with M != N whenever the ranges allow it."""
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(min_cols, max_cols).filter(lambda n: n != rows or max_cols <= 1))
    return rows, cols


def matrices(dtypes=FLOAT_DTYPES, max_rows=6, max_cols=9, min_cols=1, **kwargs):
    """2-D float tensors [M, N] of any layout."""
    return float_tensors(dtypes=dtypes, shape=matrix_shapes(max_rows, max_cols, min_cols),
                         **kwargs)
