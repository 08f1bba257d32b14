"""Inputs for the hidden LoRA properties, and what a correct layer computes from them.

Values are small dyadic numbers k/4 with |k| <= 8 (exact in fp16, bf16 and fp32),
so the matmuls of a tiny layer are exact in fp32 and lose only a few roundings in
fp16/bf16. Sizes d_in, d_out and r differ from one another (a transposed A or B
cannot hide), leading batch dims are any number of small sizes.

Tolerance rule (sums with cancellation): a result computed in dtype d is within
    atol(d) + rtol(d) * magnitude
of the float64 formula, where `magnitude` is the same formula on absolute values
(|x| @ |W|.T + |b| + scaling * |x| @ |A|.T @ |B|.T): the classical bound on the
rounding error of a sum is proportional to the sum of |terms|, not to |sum|.
rtol/atol are grader/kit/tolerance.py's per-dtype values ("two to four roundings").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import assume
from hypothesis import strategies as st

from grader.kit.checks import assert_close, assert_tensor
from grader.kit.tolerance import tolerance

LAYER_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
ALPHAS = (1.0, 2.0, 0.5, 16.0, 3.0, 32.0)


def dyadic(shape, seed: int, dtype=torch.float32, nonzero: bool = False) -> torch.Tensor:
    """Values k/4, k in [-8, 8] (k != 0 when nonzero), from a seed; exact in every dtype."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(-8, 9, tuple(shape), generator=g)
    if nonzero:
        k = torch.where(k == 0, torch.ones_like(k), k)
    return (k.double() / 4).to(dtype)


@dataclass
class Layer:
    """One LoRA layer's inputs: base (weight, bias), adapters (A, B), r, alpha, x."""
    weight: torch.Tensor      # [d_out, d_in]
    bias: torch.Tensor | None  # [d_out]
    A: torch.Tensor           # [r, d_in]
    B: torch.Tensor           # [d_out, r]
    x: torch.Tensor           # [..., d_in]
    r: int
    alpha: float

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def __repr__(self) -> str:  # shown by hypothesis on failure
        d_out, d_in = self.weight.shape
        return (f"Layer(d_in={d_in}, d_out={d_out}, r={self.r}, alpha={self.alpha}, "
                f"dtype={self.dtype}, bias={self.bias is not None}, x={list(self.x.shape)})")


@st.composite
def layers(draw, dtypes=LAYER_DTYPES, max_batch_dims=3, bias=None):
    """A Layer with distinct d_in, d_out, r in [1, 8], any leading batch shape."""
    dtype = draw(st.sampled_from(dtypes))
    d_in, d_out, r = draw(st.lists(st.integers(1, 8), min_size=3, max_size=3, unique=True))
    batch = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=max_batch_dims)))
    alpha = draw(st.sampled_from(ALPHAS))
    has_bias = draw(st.booleans()) if bias is None else bias
    seed = draw(st.integers(0, 2**20))
    return Layer(
        weight=dyadic((d_out, d_in), seed, dtype),
        bias=dyadic((d_out,), seed + 1, dtype) if has_bias else None,
        A=dyadic((r, d_in), seed + 2, dtype),
        B=dyadic((d_out, r), seed + 3, dtype),
        x=dyadic(batch + (d_in,), seed + 4, dtype),
        r=r, alpha=alpha)


# ---------------------------------------------------------- expected values --
def base64(layer: Layer, x=None) -> torch.Tensor:
    x = layer.x if x is None else x
    y = x.double() @ layer.weight.double().T
    return y + layer.bias.double() if layer.bias is not None else y


def update64(layer: Layer) -> torch.Tensor:
    """scaling * x @ A.T @ B.T in float64."""
    return layer.scaling * (layer.x.double() @ layer.A.double().T) @ layer.B.double().T


def forward64(layer: Layer) -> torch.Tensor:
    return base64(layer) + update64(layer)


def magnitude(layer: Layer) -> torch.Tensor:
    """The formula on absolute values: the scale of the rounding error of forward."""
    x, W = layer.x.double().abs(), layer.weight.double().abs()
    mag = x @ W.T + (layer.bias.double().abs() if layer.bias is not None else 0.0)
    return mag + layer.scaling * (x @ layer.A.double().abs().T) @ layer.B.double().abs().T


def delta64(layer: Layer) -> torch.Tensor:
    return layer.scaling * layer.B.double() @ layer.A.double()


def delta_magnitude(layer: Layer) -> torch.Tensor:
    return layer.scaling * layer.B.double().abs() @ layer.A.double().abs()


def assume_update_matters(layer: Layer) -> None:
    """Skip draws where the LoRA update is lost in rounding (it must be visible)."""
    tol = tolerance(layer.dtype)
    visible = update64(layer).abs() > 8 * (tol.atol + tol.rtol * magnitude(layer))
    assume(bool(visible.any()))


def assert_close_to(got, expected, mag, dtype, message: str, **context) -> None:
    """got has `dtype` and is within dtype's tolerance of `expected`, rtol relative to
    `mag`, the sum of the |terms| (a bound on the rounding error of a sum)."""
    assert_tensor(got, dtype=dtype, shape=expected.shape, what=message.split(":")[0])
    assert_close(got, expected, message, dtype=dtype, magnitude=mag, **context)
