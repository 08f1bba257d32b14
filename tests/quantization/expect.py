"""What a correct quantizer returns, and the one sanctioned way to differ from it.

SPEC §3.1: q = round_half_even(v), v = fl32(fl32(127 * x) / absmax). Where v is
within QUANT_TIE_ULPS float32 ulps of n + 0.5 (but not on it), another order of
the same operations may round the other way, so either neighbour is accepted.
"""

from __future__ import annotations

import torch

from grader.kit.checks import assert_all, assert_tensor, ulp32
from tests.quantization.tolerances import QUANT_TIE_ULPS, SCALE_ULPS


def spec_v(x: torch.Tensor, dim: int | None) -> torch.Tensor:
    """v = fl32(fl32(127 * x) / absmax), the specification's own float32 value
    (0 where absmax is 0). torch's float32 * and / are correctly rounded IEEE."""
    x32 = x.to(torch.float32)
    absmax = x32.abs().amax() if dim is None else x32.abs().amax(dim=dim, keepdim=True)
    v = (x32 * 127) / absmax
    return torch.where(absmax > 0, v, 0.0)


def assert_codes_match(q, q_ref, x, dim, what="q") -> None:
    """q equals the reference codes, except a neighbour where v is a near-tie:
    within QUANT_TIE_ULPS float32 ulps of n + 0.5 but not on it (SPEC §3.1)."""
    assert_tensor(q, dtype=torch.int8, shape=q_ref.shape, what=what)
    v = spec_v(x, dim).to(q_ref.device).double()
    distance_to_half = (v - (v.floor() + 0.5)).abs()
    near_tie = (distance_to_half <= QUANT_TIE_ULPS * ulp32(v)) & (distance_to_half > 0)
    differ = q.to(torch.int16) - q_ref.to(torch.int16)
    ok = (differ == 0) | (near_tie & (differ.abs() == 1))
    assert_all(ok, f"{what} differs from round-half-even(127 * x / absmax)",
               x=x, got=q, expected=q_ref)


def assert_scale_matches(scale, scale_ref, x, what="scale") -> None:
    """scale is float32 with the reference's shape, max|x| / 127 within SCALE_ULPS."""
    assert_tensor(scale, dtype=torch.float32, shape=scale_ref.shape, what=what)
    error = (scale.double() - scale_ref.double()).abs()
    assert_all(error <= SCALE_ULPS * ulp32(scale_ref), f"{what} should be max|x| / 127",
               x=x, got=scale, expected=scale_ref)
