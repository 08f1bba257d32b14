"""Numeric tolerances of the moe hidden tests.

Each value says why it is what it is; the per-dtype tolerances they build on are
the course's (grader/kit/tolerance.py).
"""

from __future__ import annotations

from grader.kit.tolerance import Tolerance

# moe (SPEC §3.5): float32 MoELayer outputs against a float64 token-by-token reference.
# Each output sums k gate-weighted expert outputs, each two small float32 matmuls
# (d_model, d_ff <= 7) and a SiLU: a few dozen roundings of O(1) values, ~1e-6. atol
# covers outputs that cancel to near 0; a wrong expert or weight is off by ~0.1.
MOE_OUTPUT = Tolerance(1e-5, 1e-5, "float32 expert MLPs of width <= 7, k terms summed")
# Gradients of the same layer go through softmax, SiLU' and the matmuls backwards:
# about twice the roundings of the forward pass.
MOE_GRAD = Tolerance(1e-4, 1e-5, "float32 backward through gate softmax and expert MLPs")
