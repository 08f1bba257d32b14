"""Hidden properties of load_balancing_loss (Task 5.2, SPEC §3.5)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_close, assert_raises, assert_tensor
from grader.kit.probes import run_probe
from tests.moe.expect import F32, assert_grad_near, spec_aux_loss

pytestmark = pytest.mark.task("5.2")
points = pytest.mark.points


@st.composite
def routings(draw, max_tokens=8, max_experts=6):
    """(router_probs [T, E] float32 rows of a softmax, indices [T, k] distinct per row)."""
    n_tokens = draw(st.integers(1, max_tokens))
    n_experts = draw(st.integers(1, max_experts))
    k = draw(st.integers(1, n_experts))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_tokens, n_experts, generator=g) * 2
    indices = torch.stack([torch.randperm(n_experts, generator=g)[:k] for _ in range(n_tokens)])
    return torch.softmax(logits, dim=-1), indices


def loss_grad(moe, router_probs, indices):
    """d loss / d router_probs through the student's loss."""
    probs = router_probs.clone().requires_grad_(True)
    moe.load_balancing_loss(probs, indices).backward()
    return probs.grad


# ---------------------------------------------------------------- cheap first --
@points(1)
def test_worked_example_from_the_handout(student):
    """E=2, k=1, both tokens on expert 0, probs [[0.75, 0.25], [0.25, 0.75]] -> loss 1."""
    probs = torch.tensor([[0.75, 0.25], [0.25, 0.75]])
    loss = student.load_balancing_loss(probs, torch.tensor([[0], [0]]))
    assert_tensor(loss, dtype=torch.float32, shape=(), what="loss")
    assert_close(loss, torch.tensor(1.0, dtype=torch.float64), "loss", tol=F32)


@points(2)
@pytest.mark.parametrize("n_experts, k, per_expert", [(4, 1, 1), (4, 2, 3), (6, 3, 2), (8, 8, 1)])
def test_uniform_routing_gives_exactly_one(student, n_experts, k, per_expert):
    """Every expert gets the same number of (token, slot) pairs and P_e = 1/E: loss = 1."""
    # Token t sends its k slots to experts t*k, t*k+1, ... (mod E): balanced counts.
    n_tokens = n_experts * per_expert
    indices = torch.tensor([[(t * k + j) % n_experts for j in range(k)]
                            for t in range(n_tokens)])
    probs = torch.full((n_tokens, n_experts), 1.0 / n_experts)
    loss = student.load_balancing_loss(probs, indices)
    assert_tensor(loss, dtype=torch.float32, shape=(), what="loss")
    assert_close(loss, torch.tensor(1.0, dtype=torch.float64), "loss for uniform routing",
                 tol=F32, indices=indices)


@points(1)
@pytest.mark.parametrize("indices", [[[0, 1], [1, 2]], [[0], [2]], [[0, 3]]])
def test_mismatched_or_out_of_range_indices_raise_value_error(student, indices):
    """indices with another T than router_probs, or outside [0, E), raise ValueError."""
    probs = torch.full((3, 3), 1 / 3)
    assert_raises(ValueError, student.load_balancing_loss, probs, torch.tensor(indices),
                  what=f"router_probs [3, 3] with indices {indices}")


# ------------------------------------------------------------ the contract --
@points(4)
@given(routing=routings())
def test_matches_the_formula_on_random_routing(student, routing):
    """loss = E * sum_e f_e * P_e with f_e the fraction of all T*k slots sent to e."""
    probs, indices = routing
    loss = student.load_balancing_loss(probs, indices)
    assert_tensor(loss, dtype=torch.float32, shape=(), what="loss")
    assert_close(loss, spec_aux_loss(probs, indices), "loss", tol=F32,
                 router_probs=probs, indices=indices)


@points(1)
@given(routing=routings())
def test_loss_is_at_least_one_when_probs_follow_the_counts(student, routing):
    """With P_e = f_e the loss is E * sum f_e^2 >= 1 (Cauchy-Schwarz), equal at balance."""
    _, indices = routing
    n_tokens = indices.shape[0]
    n_experts = int(indices.max()) + 1
    f = torch.bincount(indices.flatten(), minlength=n_experts).double() / indices.numel()
    probs = f.expand(n_tokens, n_experts).float()
    loss = student.load_balancing_loss(probs, indices)
    assert_tensor(loss, dtype=torch.float32, shape=(), what="loss")
    expected = n_experts * (f * f).sum()
    assert_close(loss, expected, "E * sum f^2", tol=F32, indices=indices)


@points(2)
@given(routing=routings())
def test_gradient_reaches_router_probs(student, routing):
    """d loss / d router_probs[t, e] = E * f_e / T: the counts carry no gradient, P does."""
    probs, indices = routing
    grad = run_probe(student, loss_grad, probs, indices)
    n_tokens, n_experts = probs.shape
    counts = torch.bincount(indices.flatten(), minlength=n_experts).double()
    f = counts / indices.numel()
    expected = (n_experts * f / n_tokens).expand(n_tokens, n_experts)
    assert_grad_near(grad, expected, "d loss / d router_probs", indices=indices)
