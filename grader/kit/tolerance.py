"""Numeric tolerances, per dtype, in one place. Every value says why it is what it is.

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

# How many float32 ulps an IEEE division and a multiplication may move a value
# that the specification computes in a fixed order: v = fl32(fl32(127 * x) / absmax).
# Another order of the same two operations lands within 2 ulps (SPEC §3.1 ties rule).
QUANT_TIE_ULPS = 2

# absmax / 127 may be computed as absmax * (1 / 127): one float32 ulp apart at most.
# A wrong divisor (128, 255) is ~1% off, i.e. tens of thousands of ulps.
SCALE_ULPS = 1


def tolerance(dtype: torch.dtype) -> Tolerance:
    return TOLERANCES[dtype]

# kv_cache attention outputs are convex combinations of rows of v: their absolute
# error scales with max|v|, not with the output itself (which may cancel to ~0).
# atol = dtype atol * this * max|v|. Scores/softmax in float32 then p @ v with p
# rounded to fp16 costs ~2^-11 * max|v| < fp16 atol (1e-3) * 2 * max|v|.
KV_ATTENTION_ATOL_SCALE = 2.0

# kv_cache: logits of the tiny float32 model (2 layers, |logits| up to ~30),
# student's float32 attention against the float64 oracle, or cached against
# uncached (other matmul shapes, other summation orders): observed differences
# ~1e-5; 1e-4 leaves room for other BLAS builds. A wrong position, mask or head
# moves logits by O(1). Two logits each within this tolerance may swap order
# only when their margin is below twice it: only then may greedy tokens differ.
KV_LOGITS = Tolerance(rtol=1e-4, atol=1e-4,
                      why="float32 model, several summation orders; bugs move logits by O(1)")

# moe (SPEC §3.5): float32 MoELayer outputs against a float64 token-by-token reference.
# Each output sums k gate-weighted expert outputs, each two small float32 matmuls
# (d_model, d_ff <= 7) and a SiLU: a few dozen roundings of O(1) values, ~1e-6. atol
# covers outputs that cancel to near 0; a wrong expert or weight is off by ~0.1.
MOE_OUTPUT = Tolerance(1e-5, 1e-5, "float32 expert MLPs of width <= 7, k terms summed")
# Gradients of the same layer go through softmax, SiLU' and the matmuls backwards:
# about twice the roundings of the forward pass.
MOE_GRAD = Tolerance(1e-4, 1e-5, "float32 backward through gate softmax and expert MLPs")


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
