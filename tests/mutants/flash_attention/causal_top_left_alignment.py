"""Causal mask aligned top-left (key j visible iff j <= i), not bottom-right (j <= Tk - Tq + i).
Caught by: test_flash_attention_returns_the_forward_output
Classic: yes

Assignment 4: FlashAttention, a fused attention kernel in Triton.

You implement (see README.md beside this file):

    Task 4.1  flash_attention_forward   one Triton kernel: o and lse, tiled, online softmax
    Task 4.2  causal=True               bottom-right causal mask, full blocks skip masking
    Task 4.3  flash_attention           differentiable: backward recomputes score tiles
    Task 4.4  (stretch)                 the backward pass as Triton kernels

Shapes: q [B, H, Tq, D], k and v [B, H, Tk, D]; o [B, H, Tq, D]; lse [B, H, Tq].

    S   = sm_scale · q kᵀ                       [Tq, Tk] per (batch, head), never stored
    P   = softmax(S) row by row (masked entries are -inf)
    o   = P v
    lse = log Σ_j exp(S_ij)                    natural log, float32

Run the public tests with `grader test flash_attention` (or plain `pytest
assignments/flash_attention`). On a machine without a GPU the kernels run in
Triton's interpreter (TRITON_INTERPRET=1, set for you by the test setup):
keep your own experiments to tiny shapes there.
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl
from torch import Tensor

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
LOG2E = 1.4426950408889634  # log2(e):  exp(x) = exp2(x · log2(e))
LN2 = 0.6931471805599453    # ln(2):    log(x) = log2(x) · ln(2)


def _interpreting() -> bool:
    """True when kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


# ---------------------------------------------------------------- checks --
def _check_inputs(q, k, v, causal, sm_scale) -> float:
    """Raise on bad arguments; return the softmax scale to use."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must be 4-D [B, H, T, D], got shape {list(t.shape)}")
        if t.dtype not in DTYPES:
            raise ValueError(f"{name} must be fp16, bf16 or fp32, got {t.dtype}")
    if k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if k.device != q.device or v.device != q.device:
        raise ValueError(f"q, k and v must share a device, got {q.device}, {k.device}, {v.device}")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {list(k.shape)} and "
                         f"{list(v.shape)}")
    (batch, heads, n_q, dim), n_k = q.shape, k.shape[2]
    if k.shape[:2] != q.shape[:2] or k.shape[3] != dim:
        raise ValueError(f"k {list(k.shape)} does not match q {list(q.shape)}: "
                         "B, H and D must agree")
    if dim not in HEAD_DIMS:
        raise ValueError(f"head dim D={dim} is not supported; use one of {HEAD_DIMS}")
    if min(batch, heads, n_q, n_k) < 1:
        raise ValueError(f"empty input: q {list(q.shape)}, k {list(k.shape)}")
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if q.device.type != "cuda" and not _interpreting():
        raise ValueError(f"q is on {q.device}: compiled Triton kernels need CUDA tensors")
    if sm_scale is None:
        return 1.0 / math.sqrt(dim)
    if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)):
        raise TypeError(f"sm_scale must be a float or None, got {type(sm_scale).__name__}")
    if not math.isfinite(sm_scale):
        raise ValueError(f"sm_scale must be finite, got {sm_scale}")
    return float(sm_scale)


def _dot_in_fp32(dtype: torch.dtype) -> bool:
    """Whether tiles go through tl.dot as float32 (IEEE): always for fp32 inputs (no
    TF32 rounding of the scores), and for bf16 under the interpreter, whose bf16
    tl.dot returns garbage (triton 3.9). fp16/bf16 on a GPU use the tensor cores."""
    return dtype == torch.float32 or (dtype == torch.bfloat16 and _interpreting())


# ---------------------------------------------------------------- kernels --
@triton.jit
def _dot(a, b, acc, DOT_FP32: tl.constexpr):
    """acc + a @ b with a float32 accumulator: fp16/bf16 operands on the tensor
    cores, or both operands in float32 with IEEE (not TF32) products."""
    if DOT_FP32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc)


@triton.jit
def _attn_fwd_tiles(acc, l_i, m_i, q, k_ptrs, v_ptrs, stride_kn, stride_vn,
                    rows, cols, lo, hi, n_keys, diagonal, qk_scale,
                    MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                    BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr):
    """Stream the K/V tiles of keys [lo, hi) past one Q tile: the online softmax.

    Invariant after each tile, per query row:
        m_i = max of the scores seen so far            (log2 units: s · log2 e)
        l_i = Σ exp2(s_j − m_i) over the keys seen so far
        acc = Σ exp2(s_j − m_i) · v_j
    A new tile with a larger maximum m_new rescales l_i and acc by
    alpha = exp2(m_i − m_new) before adding its own terms.
    MASKED: the tile may hold keys a row must not see (past Tk, or in the
    causal future); the other tiles are fully visible and skip all masking.
    """
    for start_n in range(lo, hi, BLOCK_N):
        keys = start_n + cols
        if MASKED:
            k = tl.load(k_ptrs + start_n * stride_kn, mask=keys[None, :] < n_keys, other=0.0)
        else:
            k = tl.load(k_ptrs + start_n * stride_kn)
        # Scores in log2 units: sm_scale · log2(e) is folded into one multiplier.
        s = _dot(q, k, tl.zeros([q.shape[0], BLOCK_N], dtype=tl.float32), DOT_FP32) * qk_scale
        if MASKED:
            visible = keys[None, :] < n_keys
            if CAUSAL:  # bottom-right aligned: row i sees keys j <= i + (Tk - Tq)
                visible = visible & (keys[None, :] <= rows[:, None] + diagonal)
            s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        if MASKED:
            # A row that has seen no visible key yet keeps m = -inf; subtracting 0
            # instead gives p = exp2(-inf) = 0 and alpha = 0, not exp2(-inf + inf) = nan.
            m_new_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_new_safe = m_new
        alpha = tl.math.exp2(m_i - m_new_safe)
        p = tl.math.exp2(s - m_new_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        if MASKED:
            v = tl.load(v_ptrs + start_n * stride_vn, mask=keys[:, None] < n_keys, other=0.0)
        else:
            v = tl.load(v_ptrs + start_n * stride_vn)
        acc = _dot(p.to(v.dtype), v, acc * alpha[:, None], DOT_FP32)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, O, LSE, qk_scale,  # noqa: E741 (O: the output, as in the paper)
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_om, stride_od,
    stride_lb, stride_lh,
    n_heads, n_queries, n_keys, TUNE_Q, TUNE_K,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One program: BLOCK_M query rows of one (batch, head); the tile stays on chip.
    (TUNE_Q, TUNE_K: the autotuner's key, lengths rounded up to a power of two.)"""
    start_m = tl.program_id(0) * BLOCK_M
    batch = tl.program_id(1) // n_heads
    head = tl.program_id(1) % n_heads
    rows = start_m + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)

    q_ptrs = (Q + batch.to(tl.int64) * stride_qb + head * stride_qh
              + rows[:, None] * stride_qm + dims[None, :] * stride_qd)
    # K is read as Kᵀ tiles [HEAD_DIM, BLOCK_N], so q @ kᵀ is a plain tl.dot.
    k_ptrs = (K + batch.to(tl.int64) * stride_kb + head * stride_kh
              + cols[None, :] * stride_kn + dims[:, None] * stride_kd)
    v_ptrs = (V + batch.to(tl.int64) * stride_vb + head * stride_vh
              + cols[:, None] * stride_vn + dims[None, :] * stride_vd)
    row_ok = rows < n_queries
    q = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # Which keys need masking. Causal: row i sees keys j <= i + diagonal, with
    # diagonal = Tk - Tq (bottom-right alignment). Keys [0, full_hi) are visible to
    # every row of this tile (even its first row): no mask. Keys [full_hi, hi)
    # straddle the diagonal or the end of K: masked. Keys >= hi are invisible to
    # every row and never loaded, which halves the work of causal attention.
    diagonal = 0
    if CAUSAL:
        first_row_end = tl.minimum(tl.maximum(start_m + 1 + diagonal, 0), n_keys)
        full_hi = (first_row_end // BLOCK_N) * BLOCK_N
        hi = tl.minimum(tl.maximum(start_m + BLOCK_M + diagonal, 0), n_keys)
    else:
        full_hi = (n_keys // BLOCK_N) * BLOCK_N
        hi = n_keys
    acc, l_i, m_i = _attn_fwd_tiles(acc, l_i, m_i, q, k_ptrs, v_ptrs, stride_kn, stride_vn,
                                    rows, cols, 0, full_hi, n_keys, diagonal, qk_scale,
                                    False, CAUSAL, BLOCK_N, DOT_FP32)
    acc, l_i, m_i = _attn_fwd_tiles(acc, l_i, m_i, q, k_ptrs, v_ptrs, stride_kn, stride_vn,
                                    rows, cols, full_hi, hi, n_keys, diagonal, qk_scale,
                                    True, CAUSAL, BLOCK_N, DOT_FP32)

    # Epilogue: o = acc / l and lse = ln Σ exp(S) = (m + log2 l) · ln 2. A row that
    # saw no key (causal, Tq > Tk) has l = 0: o = 0 and lse = -inf, not 0/0.
    seen = l_i > 0
    l_safe = tl.where(seen, l_i, 1.0)
    o = acc / l_safe[:, None]
    lse = tl.where(seen, (m_i + tl.math.log2(l_safe)) * 0.6931471805599453, float("-inf"))
    o_ptrs = (O + batch.to(tl.int64) * stride_ob + head * stride_oh
              + rows[:, None] * stride_om + dims[None, :] * stride_od)
    tl.store(o_ptrs, o.to(O.dtype.element_ty), mask=row_ok[:, None])
    lse_ptrs = LSE + batch.to(tl.int64) * stride_lb + head * stride_lh + rows
    tl.store(lse_ptrs, lse, mask=row_ok)


def _fwd_configs() -> list[triton.Config]:
    """Tile shapes for the forward kernel.

    GPU: the shapes fast Triton attention kernels use (a 128-row Q tile, 64 or 128
    keys a step, 4-8 warps, 3-4 pipeline stages so the next K/V tiles load while
    this one computes); the autotuner times them once per problem size.
    Interpreter: one small config (no timing runs), whose 32 x 16 tiles make the
    tiny test shapes span several tiles and tails.
    """
    if _interpreting():
        return [triton.Config({"BLOCK_M": 32, "BLOCK_N": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s)
            for bm, bn, w, s in [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3),
                                 (128, 64, 4, 4), (64, 64, 4, 3)]]


def _tune_key(n: int) -> int:
    """Lengths are tuned in power-of-two buckets, so every length is not re-timed."""
    return triton.next_power_of_2(n)


_attn_fwd = triton.autotune(
    configs=_fwd_configs(), key=["TUNE_Q", "TUNE_K", "HEAD_DIM", "CAUSAL", "DOT_FP32"],
)(_attn_fwd_kernel)


def _launch_forward(q: Tensor, k: Tensor, v: Tensor, causal: bool,
                    sm_scale: float) -> tuple[Tensor, Tensor]:
    """Allocate o and lse and launch the forward kernel on checked inputs."""
    batch, heads, n_q, dim = q.shape
    n_k = k.shape[2]
    o = torch.empty((batch, heads, n_q, dim), dtype=q.dtype, device=q.device)
    lse = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)

    def grid(meta):
        return (triton.cdiv(n_q, meta["BLOCK_M"]), batch * heads)

    _attn_fwd[grid](
        q, k, v, o, lse, sm_scale * LOG2E,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(), lse.stride(0), lse.stride(1),
        heads, n_q, n_k, _tune_key(n_q), _tune_key(n_k),
        HEAD_DIM=dim, CAUSAL=causal, DOT_FP32=_dot_in_fp32(q.dtype),
    )
    return o, lse


def flash_attention_forward(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False,
                            sm_scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Attention output and log-sum-exp, by one Triton kernel (FlashAttention forward).

        S   = sm_scale · q kᵀ                   [Tq, Tk] per (batch, head), never stored
        o   = softmax(S) v                      row-wise softmax over the keys
        lse = log Σ_j exp(S_ij)                 natural log

    A tile of Q stays on chip while tiles of K and V stream past; the softmax is
    computed online (running max m and sum l, rescaling the accumulator).

    causal=True: query i sits at absolute position Tk − Tq + i and sees keys
    j <= Tk − Tq + i (bottom-right alignment, as in kv_cache). A query that sees
    no key at all (Tq > Tk) gets o = 0 and lse = −inf.

    Args:
        q: [B, H, Tq, D]; k, v: [B, H, Tk, D]. fp16, bf16 or fp32 (one dtype, one
           device), any Tq, Tk >= 1, D in {16, 32, 64, 128}, any strides.
        causal:   apply the causal mask.
        sm_scale: the score scale; None means 1 / sqrt(D).
    Returns:
        (o, lse): o [B, H, Tq, D] in q's dtype; lse [B, H, Tq] float32.
    Raises:
        ValueError: wrong ranks, shapes, head dim, dtypes or devices (TypeError for
                    non-tensors, a non-bool causal or a non-number sm_scale).

    Example: a query of zeros scores 0 against every key, so softmax is uniform:
    o = the mean of the Tk rows of v, and lse = log(Tk).
    """
    scale = _check_inputs(q, k, v, causal, sm_scale)
    return _launch_forward(q, k, v, causal, scale)


# ------------------------------------------------------ backward (4.3, 4.4) --
# Gradients of o = softmax(S) v with S = sm_scale · q kᵀ, per (batch, head):
#     dv   = Pᵀ do
#     dP   = do vᵀ
#     dS   = P ∘ (dP − δ),  δ_i = Σ_j P_ij dP_ij = Σ_d do_id o_id   (rowsum(do ∘ o))
#     dq   = sm_scale · dS k,     dk = sm_scale · dSᵀ q
# P is never stored: each tile is recomputed from q, k and lse,
#     P_ij = exp(S_ij − lse_i) = exp2(S_ij · log2 e − lse_i · log2 e).
# Two kernels avoid atomics: one owns a K/V tile and streams Q past it (dk, dv),
# the other owns a Q tile and streams K/V past it (dq), as in the forward.


@triton.jit
def _attn_bwd_delta_kernel(O, DO, DELTA, stride_ob, stride_oh, stride_om, stride_od,  # noqa: E741
                           stride_db, stride_dh, stride_dm, stride_dd, n_heads, n_queries,
                           HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """δ_i = Σ_d do_id · o_id for BLOCK_M rows of one (batch, head), float32."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    batch = tl.program_id(1) // n_heads
    head = tl.program_id(1) % n_heads
    dims = tl.arange(0, HEAD_DIM)
    row_ok = rows[:, None] < n_queries
    o = tl.load(O + batch.to(tl.int64) * stride_ob + head * stride_oh
                + rows[:, None] * stride_om + dims[None, :] * stride_od, mask=row_ok, other=0.0)
    do = tl.load(DO + batch.to(tl.int64) * stride_db + head * stride_dh
                 + rows[:, None] * stride_dm + dims[None, :] * stride_dd, mask=row_ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + tl.program_id(1).to(tl.int64) * n_queries + rows, delta,
             mask=rows < n_queries)


@triton.jit
def _attn_bwd_dkdv_tiles(dk, dv, k, v, q_ptrs, do_ptrs, lse_ptr, delta_ptr, stride_qm, stride_dm,
                         keys, rows, lo, hi, n_queries, diagonal, qk_scale,
                         MASKED: tl.constexpr, BLOCK_M: tl.constexpr, DOT_FP32: tl.constexpr):
    """Stream Q/dO tiles of query rows [lo, hi) past one K/V tile, accumulating dk, dv.
    Works on transposed tiles (Pᵀ is [BLOCK_N, BLOCK_M]) so the sums over queries
    are plain tl.dot's. Rows past Tq load q = do = 0 and lse = +inf: P = 0."""
    for start_m in range(lo, hi, BLOCK_M):
        queries = start_m + rows
        q_ok = queries < n_queries
        q_t = tl.load(q_ptrs + start_m * stride_qm, mask=q_ok[None, :], other=0.0)   # [D, M]
        lse = tl.load(lse_ptr + queries, mask=q_ok, other=float("inf"))
        # A row that sees no key has lse = -inf; +inf gives it P = 0 instead of inf.
        lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
        s_t = _dot(k, q_t, tl.zeros([k.shape[0], BLOCK_M], dtype=tl.float32), DOT_FP32)
        p_t = tl.math.exp2(s_t * qk_scale - lse2[None, :])
        if MASKED:  # bottom-right causal: key j is visible to row i iff j <= i + diagonal
            p_t = tl.where(keys[:, None] <= queries[None, :] + diagonal, p_t, 0.0)
        do = tl.load(do_ptrs + start_m * stride_dm, mask=q_ok[:, None], other=0.0)    # [M, D]
        dv = _dot(p_t.to(do.dtype), do, dv, DOT_FP32)
        dp_t = _dot(v, tl.trans(do), tl.zeros([k.shape[0], BLOCK_M], dtype=tl.float32),
                    DOT_FP32)
        delta = tl.load(delta_ptr + queries, mask=q_ok, other=0.0)
        ds_t = p_t * (dp_t - delta[None, :])
        dk = _dot(ds_t.to(q_t.dtype), tl.trans(q_t), dk, DOT_FP32)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV, sm_scale, qk_scale,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_db, stride_dh, stride_dm, stride_dd,
    n_heads, n_queries, n_keys,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One program: dk and dv for BLOCK_N keys of one (batch, head).
    dk, dv have k's contiguous layout [B, H, Tk, D]; lse and δ are [B·H, Tq]."""
    start_n = tl.program_id(0) * BLOCK_N
    bh = tl.program_id(1)
    batch = bh // n_heads
    head = bh % n_heads
    keys = start_n + tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_M)
    dims = tl.arange(0, HEAD_DIM)
    key_ok = keys[:, None] < n_keys
    k = tl.load(K + batch.to(tl.int64) * stride_kb + head * stride_kh
                + keys[:, None] * stride_kn + dims[None, :] * stride_kd, mask=key_ok, other=0.0)
    v = tl.load(V + batch.to(tl.int64) * stride_vb + head * stride_vh
                + keys[:, None] * stride_vn + dims[None, :] * stride_vd, mask=key_ok, other=0.0)
    q_ptrs = (Q + batch.to(tl.int64) * stride_qb + head * stride_qh
              + rows[None, :] * stride_qm + dims[:, None] * stride_qd)          # qᵀ tiles
    do_ptrs = (DO + batch.to(tl.int64) * stride_db + head * stride_dh
               + rows[:, None] * stride_dm + dims[None, :] * stride_dd)
    lse_ptr = LSE + bh.to(tl.int64) * n_queries
    delta_ptr = DELTA + bh.to(tl.int64) * n_queries

    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    # Causal: row i sees key j iff i >= j - diagonal. Rows before this tile's first
    # key's first viewer see none of it (skipped); rows from `full_lo` on see all of
    # it (no mask); the rows between straddle the diagonal (masked). Keys past Tk
    # only produce dk, dv rows that are never stored: they need no mask.
    diagonal = 0
    if CAUSAL:
        lo = (tl.maximum(start_n - diagonal, 0) // BLOCK_M) * BLOCK_M
        full_lo = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - diagonal, 0), BLOCK_M) * BLOCK_M
        full_lo = tl.minimum(full_lo, tl.cdiv(n_queries, BLOCK_M) * BLOCK_M)
        dk, dv = _attn_bwd_dkdv_tiles(dk, dv, k, v, q_ptrs, do_ptrs, lse_ptr, delta_ptr,
                                      stride_qm, stride_dm, keys, rows, lo, full_lo, n_queries,
                                      diagonal, qk_scale, True, BLOCK_M, DOT_FP32)
    else:
        full_lo = 0
    dk, dv = _attn_bwd_dkdv_tiles(dk, dv, k, v, q_ptrs, do_ptrs, lse_ptr, delta_ptr,
                                  stride_qm, stride_dm, keys, rows, full_lo, n_queries,
                                  n_queries, diagonal, qk_scale, False, BLOCK_M, DOT_FP32)

    out = bh.to(tl.int64) * n_keys * HEAD_DIM + keys[:, None] * HEAD_DIM + dims[None, :]
    tl.store(DK + out, (dk * sm_scale).to(DK.dtype.element_ty), mask=key_ok)
    tl.store(DV + out, dv.to(DV.dtype.element_ty), mask=key_ok)


@triton.jit
def _attn_bwd_dq_tiles(dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kn, stride_vn,
                       queries, cols, lo, hi, n_keys, diagonal, qk_scale,
                       MASKED: tl.constexpr, CAUSAL: tl.constexpr,
                       BLOCK_N: tl.constexpr, DOT_FP32: tl.constexpr):
    """Stream K/V tiles of keys [lo, hi) past one Q tile, accumulating dq."""
    for start_n in range(lo, hi, BLOCK_N):
        keys = start_n + cols
        if MASKED:
            k_t = tl.load(k_ptrs + start_n * stride_kn, mask=keys[None, :] < n_keys, other=0.0)
            v_t = tl.load(v_ptrs + start_n * stride_vn, mask=keys[None, :] < n_keys, other=0.0)
        else:
            k_t = tl.load(k_ptrs + start_n * stride_kn)                          # [D, N]
            v_t = tl.load(v_ptrs + start_n * stride_vn)
        s = _dot(q, k_t, tl.zeros([q.shape[0], BLOCK_N], dtype=tl.float32), DOT_FP32)
        p = tl.math.exp2(s * qk_scale - lse2[:, None])
        if MASKED:
            visible = keys[None, :] < n_keys
            if CAUSAL:
                visible = visible & (keys[None, :] <= queries[:, None] + diagonal)
            p = tl.where(visible, p, 0.0)
        dp = _dot(do, v_t, tl.zeros([q.shape[0], BLOCK_N], dtype=tl.float32), DOT_FP32)
        ds = p * (dp - delta[:, None])
        dq = _dot(ds.to(k_t.dtype), tl.trans(k_t), dq, DOT_FP32)
    return dq


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ, sm_scale, qk_scale,
    stride_qb, stride_qh, stride_qm, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_db, stride_dh, stride_dm, stride_dd,
    n_heads, n_queries, n_keys,
    HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """One program: dq for BLOCK_M query rows of one (batch, head); dq is contiguous."""
    start_m = tl.program_id(0) * BLOCK_M
    bh = tl.program_id(1)
    batch = bh // n_heads
    head = bh % n_heads
    queries = start_m + tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    dims = tl.arange(0, HEAD_DIM)
    q_ok = queries < n_queries
    q = tl.load(Q + batch.to(tl.int64) * stride_qb + head * stride_qh
                + queries[:, None] * stride_qm + dims[None, :] * stride_qd,
                mask=q_ok[:, None], other=0.0)
    do = tl.load(DO + batch.to(tl.int64) * stride_db + head * stride_dh
                 + queries[:, None] * stride_dm + dims[None, :] * stride_dd,
                 mask=q_ok[:, None], other=0.0)
    lse = tl.load(LSE + bh.to(tl.int64) * n_queries + queries, mask=q_ok, other=float("inf"))
    lse2 = tl.where(lse == float("-inf"), float("inf"), lse * 1.4426950408889634)
    delta = tl.load(DELTA + bh.to(tl.int64) * n_queries + queries, mask=q_ok, other=0.0)
    k_ptrs = (K + batch.to(tl.int64) * stride_kb + head * stride_kh
              + cols[None, :] * stride_kn + dims[:, None] * stride_kd)               # kᵀ tiles
    v_ptrs = (V + batch.to(tl.int64) * stride_vb + head * stride_vh
              + cols[None, :] * stride_vn + dims[:, None] * stride_vd)               # vᵀ tiles

    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    diagonal = 0  # the same key ranges as the forward kernel
    if CAUSAL:
        first_row_end = tl.minimum(tl.maximum(start_m + 1 + diagonal, 0), n_keys)
        full_hi = (first_row_end // BLOCK_N) * BLOCK_N
        hi = tl.minimum(tl.maximum(start_m + BLOCK_M + diagonal, 0), n_keys)
    else:
        full_hi = (n_keys // BLOCK_N) * BLOCK_N
        hi = n_keys
    dq = _attn_bwd_dq_tiles(dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kn, stride_vn,
                            queries, cols, 0, full_hi, n_keys, diagonal, qk_scale,
                            False, CAUSAL, BLOCK_N, DOT_FP32)
    dq = _attn_bwd_dq_tiles(dq, q, do, lse2, delta, k_ptrs, v_ptrs, stride_kn, stride_vn,
                            queries, cols, full_hi, hi, n_keys, diagonal, qk_scale,
                            True, CAUSAL, BLOCK_N, DOT_FP32)
    out = bh.to(tl.int64) * n_queries * HEAD_DIM + queries[:, None] * HEAD_DIM + dims[None, :]
    tl.store(DQ + out, (dq * sm_scale).to(DQ.dtype.element_ty), mask=q_ok[:, None])


def _bwd_tiles(dim: int) -> dict:
    """Backward tile shapes: (BLOCK_M, BLOCK_N) for dk/dv (a wide K tile, short Q
    tiles streaming) and for dq (the transpose), with launch options."""
    if _interpreting():
        return dict(dkdv=(16, 32), dq=(32, 16), num_warps=4, num_stages=1)
    return dict(dkdv=(32, 128), dq=(128, 32), num_warps=4 if dim <= 64 else 8, num_stages=3)


def _launch_backward(q, k, v, o, lse, do, causal: bool, sm_scale: float):
    """dq, dk, dv (in q's dtype) from the saved tensors and the upstream gradient."""
    batch, heads, n_q, dim = q.shape
    n_k = k.shape[2]
    dot_fp32 = _dot_in_fp32(q.dtype)
    tiles = _bwd_tiles(dim)
    options = dict(num_warps=tiles["num_warps"], num_stages=tiles["num_stages"])
    delta = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)
    _attn_bwd_delta_kernel[(triton.cdiv(n_q, 64), batch * heads)](
        o, do, delta, *o.stride(), *do.stride(), heads, n_q, HEAD_DIM=dim, BLOCK_M=64)
    lse = lse.contiguous()
    dq = torch.empty((batch, heads, n_q, dim), dtype=q.dtype, device=q.device)
    dk = torch.empty((batch, heads, n_k, dim), dtype=q.dtype, device=q.device)
    dv = torch.empty_like(dk)
    common = (*q.stride(), *k.stride(), *v.stride(), *do.stride(), heads, n_q, n_k)
    block_m, block_n = tiles["dkdv"]
    _attn_bwd_dkdv_kernel[(triton.cdiv(n_k, block_n), batch * heads)](
        q, k, v, do, lse, delta, dk, dv, sm_scale, sm_scale * LOG2E, *common,
        HEAD_DIM=dim, CAUSAL=causal, DOT_FP32=dot_fp32, BLOCK_M=block_m, BLOCK_N=block_n,
        **options)
    block_m, block_n = tiles["dq"]
    _attn_bwd_dq_kernel[(triton.cdiv(n_q, block_m), batch * heads)](
        q, k, v, do, lse, delta, dq, sm_scale, sm_scale * LOG2E, *common,
        HEAD_DIM=dim, CAUSAL=causal, DOT_FP32=dot_fp32, BLOCK_M=block_m, BLOCK_N=block_n,
        **options)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):
    """o = attention(q, k, v) with a backward that recomputes P tile by tile.

    forward saves q, k, v, o and lse (O(T·D) memory), never P or S.
    backward returns dq, dk, dv in the inputs' dtype, computed without any
    Tq × Tk tensor (Task 4.3: any tiled implementation; Task 4.4: Triton kernels).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, causal: bool, sm_scale: float) -> Tensor:
        o, lse = _launch_forward(q, k, v, causal, sm_scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.sm_scale = causal, sm_scale
        return o

    @staticmethod
    def backward(ctx, do: Tensor):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _launch_backward(q, k, v, o, lse, do, ctx.causal, ctx.sm_scale)
        return dq, dk, dv, None, None


def flash_attention(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False,
                    sm_scale: float | None = None) -> Tensor:
    """Differentiable FlashAttention: o of flash_attention_forward, with gradients.

    The same arguments, checks and output o as flash_attention_forward (lse is
    kept for the backward pass). Gradients flow to q, k and v:

        dv = Pᵀ do,  dS = P ∘ (do vᵀ − δ),  δ_i = Σ_d do_id o_id,
        dq = sm_scale · dS k,  dk = sm_scale · dSᵀ q,  P_ij = exp(S_ij − lse_i),

    computed tile by tile: no tensor of Tq × Tk elements is ever created.

    Returns:
        o [B, H, Tq, D] in q's dtype, attached to the autograd graph.
    """
    scale = _check_inputs(q, k, v, causal, sm_scale)
    return _FlashAttention.apply(q, k, v, causal, scale)
