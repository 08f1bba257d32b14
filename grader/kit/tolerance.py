"""Numeric tolerances per dtype, for every assignment. Every value says why it is what it is.

Tolerances particular to one assignment live beside its tests (tests/<name>/tolerances.py).

References are computed in float64; a student's result in dtype `d` passes when
|got - expected| <= atol + rtol * |expected| elementwise (torch.isclose's rule).
Comparisons guard against the all-zeros answer: see checks.assert_close, which
refuses to compare when the reference itself is below atol everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    why: str


TOLERANCES: dict[torch.dtype, Tolerance] = {
    torch.float64: Tolerance(1e-10, 1e-12, "float64 sums of a few thousand terms agree to ~1e-13"),
    torch.float32: Tolerance(1e-5, 1e-6,
                             "2^-24 ≈ 6e-8 per rounding; a few hundred accumulated roundings, "
                             "with room for other platforms (CS336's 1e-6 atol failed on Apple)"),
    torch.float16: Tolerance(2e-3, 1e-3, "2^-11 ≈ 4.9e-4 per rounding; two to four roundings"),
    torch.bfloat16: Tolerance(1.6e-2, 1e-2, "2^-8 ≈ 3.9e-3 per rounding; two to four roundings"),
}


def tolerance(dtype: torch.dtype) -> Tolerance:
    return TOLERANCES[dtype]
