"""Numeric tolerances of the flash_attention hidden tests.

Each value says why it is what it is; the per-dtype tolerances they build on are
the course's (grader/kit/tolerance.py).
"""

from __future__ import annotations

import torch

from grader.kit.tolerance import Tolerance

# FlashAttention (tests/flash_attention). o is a convex combination of v's rows, so its
# error scales with max|v| (per batch and head), not with |o|, which may be near 0.
# Value rounding: the probabilities P are rounded to the dtype before P·v on tensor
# cores (2^-11 fp16, 2^-8 bf16; errors of many terms add up to about one such unit),
# and o is stored in the dtype (one more rounding, relative to |o|). fp32: IEEE dots.
FLASH_VALUE_TOLERANCE: dict[torch.dtype, Tolerance] = {
    torch.float32: Tolerance(1e-5, 1e-5, "fp32 throughout; the score term below covers S"),
    torch.float16: Tolerance(2e-3, 2e-3, "P and o rounded to fp16: 2 x 2^-11 ≈ 1e-3, x2 room"),
    torch.bfloat16: Tolerance(1.6e-2, 1.6e-2, "P and o rounded to bf16: 2 x 2^-8 ≈ 8e-3, x2"),
}
# Scores S are accumulated in float32 whatever the input dtype (products of fp16/bf16
# values are exact in fp32); the sum, the scale multiplication (with log2 e folded in)
# and exp2's argument each round by 2^-24 relative to |S|max. 16 ulps of |S|max bound
# the absolute error of S (and so of lse, and, times a few, o's relative error).
FLASH_SCORE_ULPS = 16
# lse = m + log(l) in float32: one rounding of each term, 1e-5 absolute/relative leaves room.
FLASH_LSE_ATOL = 1e-5
# Gradients, relative to the largest |gradient| of each tensor: the backward rounds P and
# dS to the dtype before its tensor-core dots (three dots chained: ~3 x 2^-11 in fp16,
# ~3 x 2^-8 in bf16), and dS = P ∘ (dP − δ) cancels, so the bound is scaled by the max.
FLASH_GRAD_TOLERANCE: dict[torch.dtype, Tolerance] = {
    torch.float32: Tolerance(1e-5, 2e-5, "fp32 IEEE dots; cancellation in dP − δ"),
    torch.float16: Tolerance(4e-3, 4e-3, "three chained fp16 roundings ≈ 1.5e-3, x2 room"),
    torch.bfloat16: Tolerance(3e-2, 3e-2, "three chained bf16 roundings ≈ 1.2e-2, x2 room"),
}
