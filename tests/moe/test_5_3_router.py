"""Hidden properties of TopKRouter (Task 5.3, SPEC §3.5)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

from grader.kit.checks import assert_raises
from grader.kit.probes import run_probe
from tests.moe.expect import (
    GRID_W,
    GRID_X,
    assert_grad_near,
    check_routing,
    grid,
    noiseless,
    noisy_logits,
    run_router,
    seeded,
    spec_aux_loss,
    spec_gating,
)

pytestmark = pytest.mark.task("5.3")
points = pytest.mark.points


@st.composite
def router_cases(draw, noisy=False):
    """sizes (d_model, E, k), w_gate, w_noise (None unless noisy), x [lead..., d_model].

    x and w_gate on the dyadic grid, so logits are exact and ties happen; w_noise
    random and shifted so that softplus(w_noise(x)) is about 1 (noise that matters).
    """
    n_experts = draw(st.integers(2, 6))
    k = draw(st.integers(1, n_experts))
    d_model = draw(st.integers(2, 6))
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    seed = draw(st.integers(0, 2**31 - 1))
    x = grid(seed, GRID_X, *lead, d_model)
    w_gate = grid(seed + 1, GRID_W, n_experts, d_model)
    w_noise = seeded(seed + 2, n_experts, d_model) + 1.0 if noisy else None
    return (d_model, n_experts, k), w_gate, w_noise, x


def router_attributes(moe, d_model, n_experts, k):
    """Shapes and kinds of the router's layers, noisy and not."""
    out = {}
    for noisy in (False, True):
        router = moe.TopKRouter(d_model, n_experts, k, noisy=noisy)
        gate, noise = router.w_gate, router.w_noise
        out["noisy" if noisy else "plain"] = {
            "gate": [type(gate) is nn.Linear, list(gate.weight.shape), gate.bias is None],
            "noise": None if noise is None else [type(noise) is nn.Linear,
                                                 list(noise.weight.shape)],
        }
    return out


def bad_router(moe, d_model, n_experts, k):
    moe.TopKRouter(d_model, n_experts, k)


# ---------------------------------------------------------------- cheap first --
@points(1)
def test_w_gate_is_a_bias_free_linear_and_w_noise_exists_only_when_noisy(student):
    """w_gate is nn.Linear(d_model, E, bias=False); w_noise is None unless noisy, then a Linear."""
    out = run_probe(student, router_attributes, 5, 3, 2)
    plain, noisy = out["plain"], out["noisy"]
    assert plain["gate"] == [True, [3, 5], True], \
        f"w_gate [is nn.Linear, weight shape, bias is None] = {plain['gate']}"
    assert plain["noise"] is None, "w_noise should be None when noisy=False"
    assert noisy["noise"] is not None and noisy["noise"][0], "w_noise should be an nn.Linear"
    assert noisy["noise"][1] == [3, 5], f"w_noise weight shape {noisy['noise'][1]}, expected [3, 5]"


@points(1)
@pytest.mark.parametrize("k", [0, 4, -2])
def test_k_outside_one_to_e_raises_value_error(student, k):
    """TopKRouter(d_model, E=3, k) with k < 1 or k > E raises ValueError."""
    assert_raises(ValueError, run_probe, student, bad_router, 4, 3, k, what=f"k={k}, E=3")


# ------------------------------------------------------------ the contract --
@points(3)
@given(case=router_cases())
def test_routing_and_aux_loss_match_the_specification(student, case):
    """Without noise: top_k_gating(w_gate(x)) and the load-balancing loss of softmax(logits)."""
    sizes, w_gate, _, x = case
    out = run_probe(student, run_router, sizes, w_gate, None, x, True, None, False, None)
    check_routing(out, noiseless(w_gate, x, sizes[2]), dict(x=x, w_gate=w_gate))


@points(2)
@given(case=router_cases(noisy=True), seed=st.integers(0, 2**31 - 1))
def test_noisy_router_adds_no_noise_in_eval_mode(student, case, seed):
    """A noisy router in eval mode routes exactly like the noiseless gate."""
    sizes, w_gate, w_noise, x = case
    out = run_probe(student, run_router, sizes, w_gate, w_noise, x, False, seed, False, None)
    check_routing(out, noiseless(w_gate, x, sizes[2]), dict(x=x, w_gate=w_gate))


@points(3)
@given(case=router_cases(noisy=True), seed=st.integers(0, 2**31 - 1))
def test_training_noise_follows_the_specification_and_the_generator(student, case, seed):
    """In training, logits += randn(T, E, generator=generator) * softplus(w_noise(x)).

    The aux loss uses the noisy logits; the same generator seed gives the same routing."""
    sizes, w_gate, w_noise, x = case
    logits = noisy_logits(w_gate, w_noise, x, seed)
    weights, indices = spec_gating(logits, sizes[2])
    expected = weights, indices, spec_aux_loss(torch.softmax(logits, dim=-1), indices)
    out = run_probe(student, run_router, sizes, w_gate, w_noise, x, True, seed, False, None)
    check_routing(out, expected, dict(x=x, w_gate=w_gate, w_noise=w_noise, seed=seed))
    again = run_probe(student, run_router, sizes, w_gate, w_noise, x, True, seed, False, None)
    check_routing(again, expected, dict(x=x, w_gate=w_gate, w_noise=w_noise, seed=seed,
                                        call="a second call, same seed"))


@points(1)
@given(case=router_cases(), seed=st.integers(0, 2**31 - 1))
def test_router_without_noise_adds_none_in_training(student, case, seed):
    """noisy=False: training mode with a generator routes exactly like the plain gate."""
    sizes, w_gate, _, x = case
    out = run_probe(student, run_router, sizes, w_gate, None, x, True, seed, False, None)
    check_routing(out, noiseless(w_gate, x, sizes[2]), dict(x=x, w_gate=w_gate))


@points(2)
@given(case=router_cases(noisy=True), seed=st.integers(0, 2**31 - 1))
def test_gradients_reach_w_gate_through_weights_and_aux_loss(student, case, seed):
    """d (sum(weights * c) + aux) / d w_gate equals the float64 gradient of the specification."""
    sizes, w_gate, w_noise, x = case
    k = sizes[2]
    tokens = x.reshape(-1, x.shape[-1])
    grad_out = seeded(seed, tokens.shape[0], k)
    out = run_probe(student, run_router, sizes, w_gate, w_noise, x, True, seed, True, grad_out)

    gate64 = w_gate.double().requires_grad_(True)
    noise = torch.randn((tokens.shape[0], w_gate.shape[0]),
                        generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    t64 = tokens.double()
    logits = t64 @ gate64.T + noise.double() * F.softplus(t64 @ w_noise.double().T)
    _, indices = spec_gating(logits.detach(), k)
    weights = torch.softmax(logits.gather(1, indices), dim=-1)
    aux = spec_aux_loss(torch.softmax(logits, dim=-1), indices)
    ((weights * grad_out.double()).sum() + aux).backward()
    assume(float(gate64.grad.abs().max()) > 1e-3)  # a gradient an all-zeros answer cannot match
    assert_grad_near(out["grad_w_gate"], gate64.grad, "d loss / d w_gate", x=x, seed=seed)
