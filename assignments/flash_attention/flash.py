"""Assignment 4: FlashAttention, a fused attention kernel in Triton.

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


# Task 4.1: helper code for flash_attention_forward goes here (see README.md).


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
    raise NotImplementedError("Task 4.1: implement flash_attention_forward (see README.md)")


# Task 4.3: helper code for flash_attention goes here (see README.md).


class _FlashAttention(torch.autograd.Function):
    """o = attention(q, k, v) with a backward that recomputes P tile by tile.

    forward saves q, k, v, o and lse (O(T·D) memory), never P or S.
    backward returns dq, dk, dv in the inputs' dtype, computed without any
    Tq × Tk tensor (Task 4.3: any tiled implementation; Task 4.4: Triton kernels).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, causal: bool, sm_scale: float) -> Tensor:
        raise NotImplementedError("Task 4.3: implement _FlashAttention.forward (see README.md)")

    @staticmethod
    def backward(ctx, do: Tensor):
        raise NotImplementedError("Task 4.3: implement _FlashAttention.backward (see README.md)")


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
    raise NotImplementedError("Task 4.3: implement flash_attention (see README.md)")
