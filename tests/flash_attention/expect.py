"""What correct attention returns (float64), how close is close enough, and probes.

The reference is the textbook formula in float64, with the bottom-right causal
alignment of SPEC §3.3/§3.4: query i sits at absolute position Tk − Tq + i and
sees keys j <= Tk − Tq + i. A row that sees no key has o = 0 and lse = −inf.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_tensor
from grader.kit.strategies import KERNEL_DEVICE
from tests.flash_attention.tolerances import (
    FLASH_GRAD_TOLERANCE,
    FLASH_LSE_ATOL,
    FLASH_SCORE_ULPS,
    FLASH_VALUE_TOLERANCE,
)

HEAD_DIMS = (16, 32, 64, 128)
# bf16 tl.dot is garbage in the CPU interpreter: bf16 is graded where it is real (GPU),
# and on CPU only through the tests that draw every dtype (students must upcast there).
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
CPU_DTYPES = DTYPES if KERNEL_DEVICE == "cuda" else (torch.float32, torch.float16)


def default_scale(dim: int) -> float:
    return 1.0 / math.sqrt(dim)


def causal_mask(n_q: int, n_k: int, device="cpu") -> torch.Tensor:
    """[Tq, Tk] bool, True where query i may see key j (bottom-right aligned)."""
    i = torch.arange(n_q, device=device)[:, None]
    j = torch.arange(n_k, device=device)[None, :]
    return j <= i + (n_k - n_q)


def scores64(q, k, sm_scale, causal):
    s = (q.double() @ k.double().transpose(-1, -2)) * sm_scale
    if causal:
        s = s.masked_fill(~causal_mask(q.shape[2], k.shape[2], s.device), float("-inf"))
    return s


def attention64(q, k, v, *, causal=False, sm_scale=None):
    """(o, lse) in float64, differentiable; rows that see no key: o = 0, lse = -inf."""
    scale = default_scale(q.shape[-1]) if sm_scale is None else sm_scale
    s = scores64(q, k, scale, causal)
    lse = torch.logsumexp(s, dim=-1)
    safe = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)
    p = torch.exp(s - safe[..., None])
    return p @ v.double(), lse


def score_bound(q, k, sm_scale):
    """max |S| per (batch, head) as [B, H, 1] float64: the scale of the rounding in S."""
    s = (q.double() @ k.double().transpose(-1, -2)).abs() * abs(sm_scale)
    return s.amax(dim=(-1, -2))[..., None]


def assert_forward_matches(o, lse, q, k, v, *, causal, sm_scale, what=""):
    """o and lse equal the float64 reference within the rounding of the dtype."""
    scale = default_scale(q.shape[-1]) if sm_scale is None else sm_scale
    _, lse_ref = attention64(q, k, v, causal=causal, sm_scale=scale)
    batch, heads, n_q, dim = q.shape
    assert_tensor(o, dtype=q.dtype, shape=(batch, heads, n_q, dim), device=q.device,
                  what=f"o{what}")
    assert_tensor(lse, dtype=torch.float32, shape=(batch, heads, n_q), device=q.device,
                  what=f"lse{what}")
    lse, lse_ref = lse.cpu().double(), lse_ref.cpu().double()
    s_max = score_bound(q, k, scale).cpu()                      # [B, H, 1]
    score_error = FLASH_SCORE_ULPS * 2.0**-24 * s_max           # absolute error in S
    context = dict(q=q, k=k, v=v, causal=causal, sm_scale=sm_scale)

    seen = torch.isfinite(lse_ref)
    assert_all(torch.isfinite(lse) | ~seen, f"lse{what} is not finite where a row sees keys",
               got=lse, expected=lse_ref, **context)
    assert_all((lse == lse_ref) | seen, f"lse{what} of a row that sees no key must be -inf",
               got=lse, expected=lse_ref, **context)
    lse_tol = FLASH_LSE_ATOL + score_error + FLASH_LSE_ATOL * lse_ref.abs().nan_to_num(0, 0, 0)
    lse_ok = ~seen | ((lse - lse_ref).abs() <= lse_tol)
    assert_all(lse_ok, f"lse{what} (natural-log logsumexp of the scaled scores)",
               got=lse, expected=lse_ref, **context)
    assert_output_matches(o, q, k, v, causal=causal, sm_scale=sm_scale, what=what)


def assert_output_matches(o, q, k, v, *, causal, sm_scale, what=""):
    """o equals the float64 reference's o within the rounding of the dtype."""
    scale = default_scale(q.shape[-1]) if sm_scale is None else sm_scale
    o_ref, lse_ref = attention64(q, k, v, causal=causal, sm_scale=scale)
    assert_tensor(o, dtype=q.dtype, shape=q.shape, device=q.device, what=f"o{what}")
    o, o_ref = o.cpu().double(), o_ref.cpu().double()
    score_error = FLASH_SCORE_ULPS * 2.0**-24 * score_bound(q, k, scale).cpu()
    context = dict(q=q, k=k, v=v, causal=causal, sm_scale=sm_scale)
    tol = FLASH_VALUE_TOLERANCE[q.dtype]
    v_max = v.double().abs().amax(dim=(-1, -2))[..., None, None].cpu()    # [B, H, 1, 1]
    if bool((o_ref.abs() > tol.atol * v_max).sum() == 0) and bool(torch.isfinite(lse_ref).any()):
        raise RuntimeError("test bug: reference o below the tolerance everywhere")
    o_tol = (tol.atol + 4 * score_error[..., None]) * v_max + tol.rtol * o_ref.abs()
    assert_all(torch.isfinite(o), f"o{what} has nan or inf", got=o, **context)
    assert_all((o - o_ref).abs() <= o_tol,
               f"o{what} = softmax(S) v (atol {tol.atol:g}·max|v|, rtol {tol.rtol:g})",
               got=o, expected=o_ref, **context)


def assert_gradients_match(grads, q, k, v, do, *, causal, sm_scale):
    """dq, dk, dv equal autograd through the float64 reference, relative to their size."""
    q64, k64, v64 = (t.detach().cpu().double().requires_grad_() for t in (q, k, v))
    o64, _ = attention64(q64, k64, v64, causal=causal, sm_scale=sm_scale)
    o64.backward(do.cpu().double())
    tol = FLASH_GRAD_TOLERANCE[q.dtype]
    scale = default_scale(q.shape[-1]) if sm_scale is None else sm_scale
    q_max, k_max, v_max, do_max = (float(t.detach().double().abs().max()) for t in (q, k, v, do))
    # What each gradient's size would be without cancellation (dP − δ sums D products):
    # a floor for the error scale where the true gradient vanishes (Tk = 1: dq = 0).
    dim = q.shape[-1]
    natural = {"dq": abs(scale) * k_max * v_max * do_max * dim,
               "dk": abs(scale) * q_max * v_max * do_max * dim, "dv": do_max}
    for name, got, leaf, like in zip(("dq", "dk", "dv"), grads, (q64, k64, v64), (q, k, v),
                                     strict=True):
        assert_tensor(got, dtype=like.dtype, shape=like.shape, device=like.device, what=name)
        expected = leaf.grad
        got = got.cpu().double()
        scale = max(float(expected.abs().max()), 1e-2 * natural[name])
        assert_all(torch.isfinite(got), f"{name} has nan or inf", got=got, expected=expected)
        if scale == 0:
            assert_all(got == 0, f"{name} must be 0", got=got)
            continue
        close = (got - expected).abs() <= tol.atol * scale + tol.rtol * expected.abs()
        assert_all(close, f"{name} vs autograd of float64 attention "
                          f"(atol {tol.atol:g}·max|{name}|, rtol {tol.rtol:g})",
                   got=got, expected=expected, q=q, k=k, v=v, causal=causal, sm_scale=sm_scale)


# ------------------------------------------------------------- strategies --
def make_qkv(shape_q, n_k, dtype, seed, layout="contiguous", spread=1.0, device=KERNEL_DEVICE):
    """q [B, H, Tq, D], k, v [B, H, Tk, D] of normal values; layout "bthd" gives views of
    [B, T, H, D] tensors (how a model's projections usually lay them out)."""
    g = torch.Generator().manual_seed(seed)
    batch, heads, n_q, dim = shape_q
    out = []
    for n in (n_q, n_k, n_k):
        if layout == "bthd":
            t = (torch.randn(batch, n, heads, dim, generator=g) * spread).transpose(1, 2)
        else:
            t = torch.randn(batch, heads, n, dim, generator=g) * spread
        out.append(t.to(dtype).to(device))
    return out


@st.composite
def attention_cases(draw, dtypes=CPU_DTYPES, dims=HEAD_DIMS, max_t=70, min_t=1,
                    causal=None, sm_scale=None,
                    batch_heads=((1, 1), (1, 2), (2, 1), (2, 3))):
    """A small attention problem: (q, k, v, causal, sm_scale) with Tq != Tk mostly."""
    dim = draw(st.sampled_from(dims))
    n_q = draw(st.integers(min_t, max_t))
    n_k = draw(st.integers(min_t, max_t))
    batch, heads = draw(st.sampled_from(batch_heads))
    dtype = draw(st.sampled_from(dtypes))
    layout = draw(st.sampled_from(["contiguous", "bthd"]))
    scale = draw(sm_scale if sm_scale is not None else
                 st.none() | st.floats(0.05, 1.0).map(lambda x: round(x, 3)))
    seed = draw(st.integers(0, 2**20))
    q, k, v = make_qkv((batch, heads, n_q, dim), n_k, dtype, seed, layout)
    return q, k, v, draw(causal if causal is not None else st.booleans()), scale


# ------------------------------------------------------------------ probes --
def forward_and_gradients(module, q, k, v, do, causal, sm_scale):
    """Probe: o and (dq, dk, dv) of the student's differentiable flash_attention."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    o = module.flash_attention(q, k, v, causal=causal, sm_scale=sm_scale)
    o.backward(do)
    return {"o": o, "dq": q.grad, "dk": k.grad, "dv": v.grad}


def traced_call(module, function, q, k, v, do, causal):
    """Probe: run module.<function> (and, for flash_attention, its backward with
    upstream gradient `do` unless it is None) while watching every torch op: the aten ops
    called in forward and in backward, and the largest tensor storage created, in
    elements. While Triton launches or autotunes a kernel, its own copies and buffers
    (the interpreter copies kernel arguments; the autotuner allocates a cache buffer)
    are not counted: "inside a launch" is a launch running, not a file name, and only
    allocation and copy ops are exempt there."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from triton.runtime import autotuner, interpreter, jit

    seen = {"forward": set(), "backward": set(), "phase": "forward", "largest": 0,
            "largest_op": "", "launching": 0}
    launchers = (jit.JITFunction, interpreter.InterpretedFunction, autotuner.Autotuner,
                 autotuner.Heuristics)
    originals = {cls: cls.run for cls in launchers}
    launcher_ops = ("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
                    "zeros", "zero_", "fill_", "copy_", "clone", "set_", "detach", "alias",
                    "view", "as_strided", "_to_copy", "lift_fresh")

    def launching(original):
        def run(self, *args, **kwargs):
            seen["launching"] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                seen["launching"] -= 1
        return run

    def storages(values, out):
        for value in values:
            if isinstance(value, torch.Tensor):
                out.append(value)
            elif isinstance(value, (list, tuple)):
                storages(value, out)
        return out

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            name = str(func.overloadpacket.__name__)
            if seen["launching"] and name in launcher_ops:
                return result
            seen[seen["phase"]].add(name)
            inputs = {t.untyped_storage().data_ptr()
                      for t in storages(list(args) + list((kwargs or {}).values()), [])}
            for t in storages([result], []):
                storage = t.untyped_storage()
                if storage.data_ptr() in inputs or t.element_size() == 0:
                    continue
                size = storage.nbytes() // t.element_size()
                if size > seen["largest"]:
                    seen["largest"], seen["largest_op"] = size, name
            return result

    if do is not None:
        q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    for cls in launchers:
        cls.run = launching(originals[cls])
    try:
        with Watch():
            out = getattr(module, function)(q, k, v, causal=causal)
            o = out[0] if isinstance(out, tuple) else out
            if do is not None:
                seen["phase"] = "backward"
                o.backward(do)
    finally:
        for cls, original in originals.items():
            cls.run = original
    return {"forward_ops": sorted(seen["forward"]), "backward_ops": sorted(seen["backward"]),
            "largest": seen["largest"], "largest_op": seen["largest_op"], "o": o}


def forward_only(module, q, k, v, causal):
    """Probe: the differentiable flash_attention's forward, no backward."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    return module.flash_attention(q, k, v, causal=causal)


#: aten ops that are some form of fused attention (what scaled_dot_product_attention
#: dispatches to); none may run inside the student's functions.
FORBIDDEN_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention",
                 "cudnn_attention")
#: aten matrix products: a Triton backward (Task 4.4) needs none of them.
MATMUL_OPS = ("mm", "bmm", "addmm", "baddbmm", "matmul", "dot", "mv", "addbmm", "einsum")
#: aten ops of attention done in torch: the forward (one kernel, SPEC §3.4) runs none.
TORCH_ATTENTION_OPS = MATMUL_OPS + ("_softmax", "softmax", "_log_softmax", "log_softmax",
                                    "logsumexp")


def forbidden(ops):
    return [op for op in ops if any(f in op for f in FORBIDDEN_OPS)]


def torch_attention(ops):
    return [op for op in ops if op in TORCH_ATTENTION_OPS]


def score_budget(n_q: int, n_k: int, dim: int) -> int:
    """SPEC §3.4: no tensor outside a launch may exceed max(4·(Tq+Tk)·D, 128²) elements
    per (batch, head)."""
    return max(4 * (n_q + n_k) * dim, 128 * 128)
