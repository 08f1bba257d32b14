"""Hidden properties of top_k_gating (Task 5.1, SPEC §3.5)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_close, assert_equal, assert_raises, assert_tensor
from grader.kit.observe import call_and_inspect_inputs
from grader.kit.probes import run_probe
from tests.moe.expect import F32, assert_grad_near, logits_and_k, spec_gating

pytestmark = pytest.mark.task("5.1")
points = pytest.mark.points


def gating_grad(moe, logits, k, grad_out):
    """d sum(weights * grad_out) / d logits, through the student's gate."""
    logits = logits.clone().requires_grad_(True)
    weights, _ = moe.top_k_gating(logits, k)
    (weights * grad_out).sum().backward()
    return logits.grad


def check_shapes(weights, indices, n_tokens, k):
    assert_tensor(weights, dtype=torch.float32, shape=(n_tokens, k), what="weights")
    assert_tensor(indices, dtype=torch.int64, shape=(n_tokens, k), what="indices")


# ---------------------------------------------------------------- cheap first --
@points(1)
def test_worked_example_from_the_handout(student):
    """The handout's example: [[1, 3, 3, 0], [2, -1, 0.5, 4]], k=2 -> indices [[1, 2], [3, 0]].

    weights [[0.5, 0.5], [sigmoid(2), sigmoid(-2)]]."""
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, -1.0, 0.5, 4.0]])
    weights, indices = student.top_k_gating(logits, 2)
    check_shapes(weights, indices, 2, 2)
    assert_equal(indices, torch.tensor([[1, 2], [3, 0]]), "indices", logits=logits)
    s = torch.sigmoid(torch.tensor(2.0, dtype=torch.float64)).item()
    assert_close(weights, torch.tensor([[0.5, 0.5], [s, 1 - s]], dtype=torch.float64),
                 "weights", tol=F32, logits=logits)


@points(1)
@pytest.mark.parametrize("k", [0, -1, 5, 9])
def test_k_outside_one_to_e_raises_value_error(student, k):
    """k < 1 or k > E (number of experts) raises ValueError."""
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert_raises(ValueError, student.top_k_gating, logits, k, what=f"k={k} with E=4")


# ------------------------------------------------------------ the contract --
@points(5)
@given(case=logits_and_k(dtypes=(torch.float32, torch.float64, torch.float16, torch.bfloat16)))
def test_indices_and_weights_match_the_specification(student, case):
    """indices: top-k logits, descending, ties to the lower index; weights: their softmax.

    weights are float32, the softmax over the selected logits only."""
    logits, k = case
    weights, indices = student.top_k_gating(logits, k)
    check_shapes(weights, indices, logits.shape[0], k)
    weights_ref, indices_ref = spec_gating(logits, k)
    assert_equal(indices, indices_ref, "indices", logits=logits, k=k)
    assert_close(weights, weights_ref, "weights", tol=F32, logits=logits, k=k)


@points(2)
@given(case=logits_and_k(ties=True))
def test_ties_go_to_the_lower_expert_index(student, case):
    """Among equal logits, the lower expert index is selected first (small-integer logits)."""
    logits, k = case
    _, indices = student.top_k_gating(logits, k)
    _, indices_ref = spec_gating(logits, k)
    assert_equal(indices, indices_ref, "indices with tied logits", logits=logits, k=k)


@points(1)
@given(case=logits_and_k())
def test_indices_are_distinct_and_in_descending_logit_order(student, case):
    """Each row's indices are k distinct experts whose logits never increase along the row."""
    logits, k = case
    _, indices = student.top_k_gating(logits, k)
    assert_tensor(indices, dtype=torch.int64, shape=(logits.shape[0], k), what="indices")
    assert_all((indices >= 0) & (indices < logits.shape[1]), "index outside [0, E)",
               indices=indices)
    chosen = logits.double().gather(1, indices)
    assert_all(chosen[:, 1:] <= chosen[:, :-1], "selected logits increase along the row",
               logits=logits, indices=indices)
    distinct = torch.tensor([len(set(row)) == k for row in indices.tolist()])
    assert_all(distinct, "an expert is selected twice in a row", indices=indices)


@points(1)
@given(case=logits_and_k(dtypes=(torch.float32, torch.float16, torch.bfloat16)))
def test_weights_are_nonnegative_and_sum_to_one(student, case):
    """weights are float32, >= 0, and each row sums to 1."""
    logits, k = case
    weights, indices = student.top_k_gating(logits, k)
    check_shapes(weights, indices, logits.shape[0], k)
    assert_all(weights >= 0, "negative weight", weights=weights)
    sums = weights.double().sum(dim=-1)
    assert_all((sums - 1).abs() <= 1e-5, "a row of weights does not sum to 1",
               logits=logits, sums=sums)


@points(1)
@given(case=logits_and_k(ties=False))
def test_equals_full_softmax_then_top_k_then_renormalise(student, case):
    """weights = softmax over all experts, restricted to the top k, divided by its sum."""
    logits, k = case
    weights, indices = student.top_k_gating(logits, k)
    check_shapes(weights, indices, logits.shape[0], k)
    probs = torch.softmax(logits.double(), dim=-1)
    top, top_indices = probs.sort(dim=-1, descending=True, stable=True)
    expected = top[:, :k] / top[:, :k].sum(dim=-1, keepdim=True)
    assert_equal(indices, top_indices[:, :k], "indices", logits=logits)
    assert_close(weights, expected, "weights", tol=F32, logits=logits, k=k)


@points(1)
@given(case=logits_and_k())
def test_k_equal_to_e_is_the_dense_softmax(student, case):
    """With k = E every expert is selected and weights[t, j] = softmax(logits)[t, indices[t, j]]."""
    logits, _ = case
    n_experts = logits.shape[1]
    weights, indices = student.top_k_gating(logits, n_experts)
    check_shapes(weights, indices, logits.shape[0], n_experts)
    assert_equal(indices.sort(dim=-1).values,
                 torch.arange(n_experts).expand(logits.shape[0], n_experts),
                 "indices with k = E (each expert once)", logits=logits)
    dense = torch.softmax(logits.double(), dim=-1).gather(1, indices)
    assert_close(weights, dense, "weights with k = E", tol=F32, logits=logits)


@points(1)
@given(case=logits_and_k())
def test_logits_are_not_modified(student, case):
    """top_k_gating leaves its input unchanged (no in-place masking)."""
    logits, k = case
    _, (after, _) = call_and_inspect_inputs(student, "top_k_gating", logits, k)
    assert_equal(after, logits, "logits after the call", k=k)


@points(2)
@given(case=logits_and_k(ties=False), seed=st.integers(0, 2**31 - 1))
def test_gradient_flows_to_the_selected_logits_only(student, case, seed):
    """d weights / d logits is the softmax Jacobian on the selected logits and 0 elsewhere."""
    logits, k = case
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(logits.shape[0], k, generator=g)
    grad = run_probe(student, gating_grad, logits, k, grad_out)

    logits64 = logits.double().requires_grad_(True)
    _, indices = spec_gating(logits, k)
    kept = logits64.gather(1, indices)
    (torch.softmax(kept, dim=-1) * grad_out.double()).sum().backward()
    expected = logits64.grad
    if bool((expected.abs() <= 1e-5).all()):  # e.g. k = 1: the weight is constant 1
        if grad is not None:
            assert_all(grad.abs() <= 1e-6, "gradient should be 0 here", grad=grad)
        return
    assert_grad_near(grad, expected, "d loss / d logits", logits=logits, k=k)
