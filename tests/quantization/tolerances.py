"""Numeric tolerances of the quantization hidden tests.

Each value says why it is what it is; the per-dtype tolerances they build on are
the course's (grader/kit/tolerance.py).
"""

from __future__ import annotations

# How many float32 ulps an IEEE division and a multiplication may move a value
# that the specification computes in a fixed order: v = fl32(fl32(127 * x) / absmax).
# Another order of the same two operations lands within 2 ulps (SPEC §3.1 ties rule).
QUANT_TIE_ULPS = 2

# absmax / 127 may be computed as absmax * (1 / 127): one float32 ulp apart at most.
# A wrong divisor (128, 255) is ~1% off, i.e. tens of thousands of ulps.
SCALE_ULPS = 1
