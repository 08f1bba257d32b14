"""Public tests for assignment 4 (flash_attention): small examples you can debug.

Run them with `grader test flash_attention` or `pytest assignments/flash_attention`.
`student` is your module (flash.py), imported in this process, so `pytest --pdb`
works. On a CPU the kernels run in Triton's interpreter: these shapes are tiny.
Official grading adds hidden property-based tests; README.md §9 says what they check.
"""

import math

import pytest
import torch

from grader.kit.checks import assert_close
from grader.kit.probes import run_probe
from grader.kit.tolerance import Tolerance

points = pytest.mark.points


def attention64(q, k, v, causal=False, sm_scale=None):
    """Textbook attention in float64, bottom-right causal mask: (o, lse)."""
    q, k, v = q.double(), k.double(), v.double()
    n_q, n_k, dim = q.shape[2], k.shape[2], q.shape[3]
    scale = 1 / math.sqrt(dim) if sm_scale is None else sm_scale
    s = q @ k.transpose(-1, -2) * scale
    if causal:
        i = torch.arange(n_q, device=q.device)[:, None]
        j = torch.arange(n_k, device=q.device)[None, :]
        s = s.masked_fill(j > i + (n_k - n_q), float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - torch.where(torch.isinf(lse), 0.0, lse)[..., None])
    return p @ v, lse


def qkv(n_q, n_k, dim, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 2, n, dim, generator=g).to(device, dtype) for n in (n_q, n_k, n_k)]


def absolute(atol: float) -> Tolerance:
    """|got - expected| <= atol elementwise: the bound of a small worked example."""
    return Tolerance(rtol=0.0, atol=atol, why="a fixed bound for a small example")


# ------------------------------------------------ Task 4.1 forward kernel --
@points(2)
@pytest.mark.task("4.1")
def test_4_1_a_query_of_zeros_averages_the_values(student, kernel_device):
    """q = 0 scores 0 everywhere: o = mean of v's rows and lse = ln(Tk) = ln(5)."""
    q = torch.zeros(1, 1, 2, 16, device=kernel_device)
    v = torch.arange(5.0, device=kernel_device)[None, None, :, None].expand(1, 1, 5, 16)
    k = torch.ones(1, 1, 5, 16, device=kernel_device)
    o, lse = student.flash_attention_forward(q, k, v.contiguous())
    assert o.shape == (1, 1, 2, 16) and lse.shape == (1, 1, 2) and lse.dtype == torch.float32
    assert_close(o, torch.full((1, 1, 2, 16), 2.0), "o (mean of 0..4)", tol=absolute(1e-6))
    assert_close(lse, torch.full((1, 1, 2), math.log(5)), "lse", tol=absolute(1e-6))


@points(2)
@pytest.mark.parametrize("n_q, n_k", [(5, 9), (37, 70)], ids=str)
@pytest.mark.task("4.1")
def test_4_1_small_random_problem_matches_float64(student, kernel_device, n_q, n_k):
    """Random q, k, v with Tq != Tk (tails in both): o and lse match float64 attention."""
    q, k, v = qkv(n_q, n_k, 32, kernel_device)
    o, lse = student.flash_attention_forward(q, k, v, sm_scale=0.3)
    o_ref, lse_ref = attention64(q, k, v, sm_scale=0.3)
    assert_close(o, o_ref, "o", tol=absolute(1e-5))
    assert_close(lse, lse_ref, "lse", tol=absolute(1e-5))


@points(1)
@pytest.mark.task("4.1")
def test_4_1_large_scores_do_not_overflow(student, kernel_device):
    """Scores around ±1000 (exp overflows float32 at 89) still give exact results."""
    q, k, v = qkv(8, 12, 16, kernel_device)
    o, lse = student.flash_attention_forward(q * 300, k, v)
    o_ref, lse_ref = attention64(q * 300, k, v)
    assert torch.isfinite(o).all() and torch.isfinite(lse).all()
    assert_close(lse, lse_ref, "lse", tol=absolute(1e-2))
    assert_close(o, o_ref, "o", tol=absolute(1e-3))


# ------------------------------------------------------- Task 4.2 causal --
@points(2)
@pytest.mark.parametrize("n_q, n_k", [(3, 5), (33, 40)], ids=str)
@pytest.mark.task("4.2")
def test_4_2_causal_mask_is_bottom_right_aligned(student, kernel_device, n_q, n_k):
    """Query i sees keys j <= Tk - Tq + i: the last query sees every key."""
    q, k, v = qkv(n_q, n_k, 16, kernel_device, seed=1)
    o, lse = student.flash_attention_forward(q, k, v, causal=True)
    o_ref, lse_ref = attention64(q, k, v, causal=True)
    assert_close(o, o_ref, "o", tol=absolute(1e-5))
    assert_close(lse, lse_ref, "lse", tol=absolute(1e-5))


@points(1)
@pytest.mark.task("4.2")
def test_4_2_queries_that_see_no_key_give_zero_and_minus_inf(student, kernel_device):
    """Tq = 6 > Tk = 4: the first two queries see no key, so o = 0 and lse = -inf."""
    q, k, v = qkv(6, 4, 16, kernel_device, seed=2)
    o, lse = student.flash_attention_forward(q, k, v, causal=True)
    assert (o[:, :, :2] == 0).all(), "o of the blind rows should be 0 (not nan)"
    assert (lse[:, :, :2] == float("-inf")).all(), "lse of the blind rows should be -inf"
    o_ref, _ = attention64(q, k, v, causal=True)
    assert_close(o, o_ref, "o", tol=absolute(1e-5))


# ---------------------------------------------- Task 4.3 differentiable --
def gradients(module, q, k, v, do, causal):
    """Probe: o and the gradients of the student's flash_attention."""
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    o = module.flash_attention(q, k, v, causal=causal)
    o.backward(do)
    return o, q.grad, k.grad, v.grad


@points(2)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.task("4.3")
def test_4_3_gradients_match_autograd(student, kernel_device, causal):
    """dq, dk, dv equal autograd through float64 attention (Tq = 20, Tk = 27)."""
    q, k, v = qkv(20, 27, 32, kernel_device, seed=3)
    do = torch.randn(q.shape, generator=torch.Generator().manual_seed(4)).to(kernel_device)
    o, dq, dk, dv = run_probe(student, gradients, q, k, v, do, causal)
    leaves = [t.detach().double().requires_grad_(True) for t in (q, k, v)]
    o_ref, _ = attention64(*leaves, causal=causal)
    o_ref.backward(do.double())
    assert_close(o, o_ref, "o", tol=absolute(1e-5))
    for name, got, leaf in zip(("dq", "dk", "dv"), (dq, dk, dv), leaves, strict=True):
        assert got is not None, f"{name} is None: is flash_attention differentiable?"
        assert_close(got, leaf.grad, name, tol=absolute(1e-4))


# --------------------------------------- Task 4.4 (stretch) Triton backward --
def launches_during_backward(module, q, k, v, do):
    """Probe: how many Triton kernels run inside backward()."""
    import triton.runtime.interpreter as interpreter
    import triton.runtime.jit as jit

    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    o = module.flash_attention(q, k, v)
    count = [0]
    originals = {cls: cls.run for cls in (jit.JITFunction, interpreter.InterpretedFunction)}

    def counting(original):
        def run(self, *args, **kwargs):
            count[0] += 1
            return original(self, *args, **kwargs)
        return run

    for cls, original in originals.items():
        cls.run = counting(original)
    try:
        o.backward(do)
    finally:
        for cls, original in originals.items():
            cls.run = original
    return count[0]


@points(1)
@pytest.mark.task("4.4")
def test_4_4_backward_launches_a_triton_kernel(student, kernel_device):
    """The stretch task: backward() runs Triton kernels."""
    q, k, v = qkv(9, 13, 16, kernel_device, seed=5)
    do = torch.ones_like(q)
    assert run_probe(student, launches_during_backward, q, k, v, do) > 0, \
        "backward() launched no Triton kernel"
