"""Hidden properties of MoELayer (Task 5.4, SPEC §3.5).

The probe wraps every expert's forward to record the rows it is given, so the
tests see how the layer dispatches: each expert at most once per forward, on
exactly the tokens routed to it, T*k rows in all.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.kit.checks import assert_close, assert_raises, assert_tensor
from grader.kit.probes import run_probe
from tests.moe.expect import (
    assert_grad_near,
    dense_moe,
    forward,
    moe_cases,
    routed_rows,
    seeded,
    sorted_rows,
)
from tests.moe.tolerances import MOE_OUTPUT

pytestmark = pytest.mark.task("5.4")
points = pytest.mark.points


def bad_layer(moe, k):
    moe.MoELayer(4, 6, 3, k)


def wrong_width(moe):
    layer = moe.MoELayer(4, 6, 3, 2)
    layer(torch.zeros(2, 5))


def permuted(case, perm):
    """The same layer with expert e moved to position perm[e] (router rows too)."""
    state = dict(case["state"])
    gate = state["router.w_gate.weight"]
    new_gate = torch.empty_like(gate)
    for e, target in enumerate(perm):
        new_gate[target] = gate[e]
        for name in ("w_in.weight", "w_in.bias", "w_out.weight", "w_out.bias"):
            state[f"experts.{target}.{name}"] = case["state"][f"experts.{e}.{name}"]
    state["router.w_gate.weight"] = new_gate
    return {**case, "state": state}


# ---------------------------------------------------------------- cheap first --
@points(1)
@pytest.mark.parametrize("k", [0, 4])
def test_k_outside_one_to_e_raises_value_error(student, k):
    """MoELayer(d_model, d_ff, E=3, k) with k < 1 or k > E raises ValueError."""
    assert_raises(ValueError, run_probe, student, bad_layer, k, what=f"k={k}, E=3")


@points(1)
def test_input_with_the_wrong_width_raises_value_error(student):
    """x whose last dim is not d_model raises ValueError."""
    assert_raises(ValueError, run_probe, student, wrong_width,
                  what="x [2, 5] into a layer with d_model=4")


@points(1)
@given(case=moe_cases())
def test_output_has_the_input_shape_and_dtype(student, case):
    """y has x's shape (any leading dims) and dtype; aux_loss is a 0-d float32 tensor."""
    out = forward(student, case)
    assert_tensor(out["y"], dtype=case["x"].dtype, shape=case["x"].shape, what="y")
    assert_tensor(out["aux"], dtype=torch.float32, shape=(), what="aux_loss")


# ------------------------------------------------------------ the contract --
@points(4)
@given(case=moe_cases())
def test_output_equals_the_dense_per_token_reference(student, case):
    """y_t = sum_j weights[t, j] * experts[indices[t, j]](x_t) for every token.

    For any leading shape of x; aux_loss is the router's load-balancing loss."""
    out = forward(student, case)
    y_ref, aux_ref = dense_moe(case["state"], case["x"], case["sizes"][3])
    assert_close(out["y"], y_ref, "y", tol=MOE_OUTPUT, x=case["x"], sizes=case["sizes"])
    assert_close(out["aux"], aux_ref, "aux_loss", tol=MOE_OUTPUT, x=case["x"], sizes=case["sizes"])


@points(1)
@given(case=moe_cases(max_tokens=24))
def test_experts_see_t_times_k_rows_in_all(student, case):
    """The experts' calls together receive exactly T*k rows, never T*E."""
    out = forward(student, case)
    _, _, n_experts, k = case["sizes"]
    n_tokens = case["x"].numel() // case["x"].shape[-1]
    total = sum(rows.shape[0] for _, rows in out["calls"])
    assert total == n_tokens * k, (
        f"experts received {total} rows in all; T*k = {n_tokens}*{k} = {n_tokens * k} "
        f"(T*E would be {n_tokens * n_experts})")


@points(3)
@given(case=moe_cases(max_tokens=24))
def test_each_expert_runs_at_most_once_on_exactly_its_tokens(student, case):
    """Each expert runs at most once per forward, on exactly the tokens routed to it.

    No loop over tokens, no expert on tokens it was not chosen for."""
    out = forward(student, case)
    expected = routed_rows(case)
    seen = {}
    for e, rows in out["calls"]:
        assert e not in seen, (
            f"expert {e} was called more than once in one forward "
            f"({sum(1 for c in out['calls'] if c[0] == e)} calls): dispatch all its tokens at once")
        seen[e] = rows
    for e, rows_ref in enumerate(expected):
        rows = seen.get(e, rows_ref[:0])
        assert rows.shape[0] == rows_ref.shape[0], (
            f"expert {e} got {rows.shape[0]} rows; {rows_ref.shape[0]} tokens are routed to it")
        assert sorted_rows(rows) == sorted_rows(rows_ref), (
            f"expert {e} got other rows than the tokens routed to it")


@points(2)
@given(case=moe_cases(ties=False), data=st.data())
def test_permuting_experts_and_router_rows_leaves_the_output_unchanged(student, case, data):
    """Moving expert e and router row e to position perm[e] together changes nothing:
    the output is still the float64 reference of the unpermuted layer."""
    n_experts = case["sizes"][2]
    perm = data.draw(st.permutations(range(n_experts)), label="perm")
    y_ref, aux_ref = dense_moe(case["state"], case["x"], case["sizes"][3])
    out_perm = forward(student, permuted(case, perm))
    assert_close(out_perm["y"], y_ref, "y after permuting the experts",
                 tol=MOE_OUTPUT, perm=perm, sizes=case["sizes"])
    assert_close(out_perm["aux"], aux_ref, "aux_loss after permuting the experts",
                 tol=MOE_OUTPUT, perm=perm)


@points(2)
@given(case=moe_cases(ties=False), seed=st.integers(0, 2**31 - 1))
def test_gradients_reach_the_router_and_the_experts(student, case, seed):
    """Gradients reach w_gate and every expert that received a token, and are right.

    d (sum(y * c) + aux) / d parameters matches float64 autograd of the dense reference."""
    x = case["x"]
    grad_out = seeded(seed, *x.shape)
    out = forward(student, case, backward=True, grad_out=grad_out)

    state64 = {name: value.double().requires_grad_(True)
               for name, value in case["state"].items()}
    y, aux = dense_moe(state64, x, case["sizes"][3])
    ((y * grad_out.double()).sum() + aux).backward()
    grads = out["grads"]
    used = [e for e, rows in enumerate(routed_rows(case)) if rows.shape[0] > 0]
    params = ("w_in.weight", "w_in.bias", "w_out.weight", "w_out.bias")
    names = ["router.w_gate.weight"] + [f"experts.{e}.{p}" for e in used for p in params]
    for name in names:
        if name not in grads:
            raise AssertionError(f"parameter {name} missing from the layer")
        assert_grad_near(grads[name], state64[name].grad, f"gradient of {name}", seed=seed)
