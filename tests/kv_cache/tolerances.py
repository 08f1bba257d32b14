"""Numeric tolerances of the kv_cache hidden tests.

Each value says why it is what it is; the per-dtype tolerances they build on are
the course's (grader/kit/tolerance.py).
"""

from __future__ import annotations

from grader.kit.tolerance import Tolerance

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
