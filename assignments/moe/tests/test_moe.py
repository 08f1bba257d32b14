"""Public tests for assignment 5 (moe): small examples you can debug.

Run them with `grader test moe` or `pytest assignments/moe`. `student` is your
module (moe.py), imported in this process, so `pytest --pdb` and breakpoints
work. Tests that build your classes do it inside a *probe* (a plain function
that gets your module as its first argument), because official grading runs
your code in another process. Hidden property-based tests add many more
inputs; README.md §8 says what they check.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.kit.checks import assert_all, assert_close, assert_tensor
from grader.kit.probes import run_probe

points = pytest.mark.points


def close(got, expected, tol=1e-5):
    return torch.allclose(got.double(), torch.as_tensor(expected, dtype=torch.float64),
                          rtol=tol, atol=tol)


# ---------------------------------------------------------- Task 5.1 top_k_gating --
@points(2)
@pytest.mark.task("5.1")
def test_5_1_worked_example(student):
    """[[1, 3, 3, 0], [2, -1, 0.5, 4]], k=2 -> indices [[1, 2], [3, 0]] (handout §2).

    weights [[0.5, 0.5], [sigmoid(2), sigmoid(-2)]]."""
    weights, indices = student.top_k_gating(
        torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, -1.0, 0.5, 4.0]]), 2)
    assert indices.dtype == torch.int64 and weights.dtype == torch.float32
    assert indices.tolist() == [[1, 2], [3, 0]]  # the tie 3 = 3: lower index first
    s = 1 / (1 + math.exp(-2))
    assert close(weights, [[0.5, 0.5], [s, 1 - s]])


@points(1)
@pytest.mark.task("5.1")
def test_5_1_ties_go_to_the_lower_index(student):
    """All logits equal: the k lowest indices, in increasing order, equal weights."""
    weights, indices = student.top_k_gating(torch.zeros(2, 5), 3)
    assert indices.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert close(weights, torch.full((2, 3), 1 / 3))


@points(1)
@pytest.mark.task("5.1")
def test_5_1_k_equal_to_e_is_the_softmax(student):
    """k = E selects every expert; the weights are the ordinary softmax."""
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    weights, indices = student.top_k_gating(logits, 3)
    assert indices.tolist() == [[2, 0, 1]]
    assert close(weights, torch.softmax(logits.double(), -1)[:, [2, 0, 1]])


@points(1)
@pytest.mark.parametrize("k", [0, 4])
@pytest.mark.task("5.1")
def test_5_1_bad_k_raises_value_error(student, k):
    """k outside [1, E] raises ValueError."""
    with pytest.raises(ValueError):
        student.top_k_gating(torch.zeros(1, 3), k)


@st.composite
def small_logits_and_k(draw):
    """(logits [T, E], k): float32, T <= 3, 2 <= E <= 4 (printed in full), values in +-8."""
    n_tokens, n_experts = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    k = draw(st.integers(1, n_experts))
    values = draw(st.lists(st.floats(-8, 8, width=32), min_size=n_tokens * n_experts,
                           max_size=n_tokens * n_experts))
    return torch.tensor(values, dtype=torch.float32).reshape(n_tokens, n_experts), k


@points(1)
@pytest.mark.task("5.1")
@settings(max_examples=15)
@given(case=small_logits_and_k())
def test_5_1_gate_weights_are_the_renormalised_top_k_softmax_probabilities(student, case):
    """Each token's weights are the softmax over its k selected logits, which are its k largest."""
    logits, k = case
    weights, indices = student.top_k_gating(logits, k)
    n_tokens, n_experts = logits.shape
    assert_tensor(indices, dtype=torch.int64, shape=(n_tokens, k), what="indices")
    assert_tensor(weights, shape=(n_tokens, k), what="weights")
    assert_all((indices >= 0) & (indices < n_experts), f"indices outside [0, {n_experts})",
               indices=indices)
    repeated = (indices.unsqueeze(-1) == indices.unsqueeze(-2)).sum(-1) > 1
    assert_all(~repeated, "an expert selected twice for one token", indices=indices)
    chosen = logits.double().gather(-1, indices)
    others = logits.double().scatter(-1, indices, float("-inf"))
    assert_all(chosen.min(-1).values >= others.max(-1).values,
               "a token's selected logits are not its k largest", indices=indices)
    expected = torch.softmax(chosen, -1)
    assert_close(weights, expected, "weights vs the softmax of the selected logits",
                 dtype=torch.float32, indices=indices)


# ---------------------------------------------------- Task 5.2 load_balancing_loss --
@points(1)
@pytest.mark.task("5.2")
def test_5_2_worked_example(student):
    """E=2, k=1, both tokens on expert 0, P = [0.5, 0.5]: loss = 2 * (1 * 0.5) = 1."""
    loss = student.load_balancing_loss(torch.tensor([[0.75, 0.25], [0.25, 0.75]]),
                                       torch.tensor([[0], [0]]))
    assert loss.shape == () and close(loss, 1.0)


@points(1)
@pytest.mark.task("5.2")
def test_5_2_imbalanced_routing(student):
    """E=2, k=1, both tokens on expert 0 and P = [0.9, 0.1]: loss = 2 * 0.9 = 1.8."""
    loss = student.load_balancing_loss(torch.tensor([[0.9, 0.1], [0.9, 0.1]]),
                                       torch.tensor([[0], [0]]))
    assert close(loss, 1.8)


@points(1)
@pytest.mark.task("5.2")
def test_5_2_uniform_routing_gives_one_for_k_2(student):
    """4 experts, k=2, every expert used equally, P uniform: loss = 1 (not 2, not 1/4)."""
    indices = torch.tensor([[0, 1], [2, 3], [1, 0], [3, 2]])
    loss = student.load_balancing_loss(torch.full((4, 4), 0.25), indices)
    assert close(loss, 1.0)


# ------------------------------------------------------------ Task 5.3 TopKRouter --
def route(moe, w_gate, w_noise, x, train, seed):
    router = moe.TopKRouter(w_gate.shape[1], w_gate.shape[0], 2, noisy=w_noise is not None)
    with torch.no_grad():
        router.w_gate.weight.copy_(w_gate)
        if w_noise is not None:
            router.w_noise.weight.copy_(w_noise)
    router.train(train)
    return router(x, torch.Generator().manual_seed(seed))


W_GATE = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
X = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@points(2)
@pytest.mark.task("5.3")
def test_5_3_router_without_noise(student):
    """logits = x @ w_gate.T, then top_k_gating with k=2; aux = load-balancing loss."""
    weights, indices, aux = run_probe(student, route, W_GATE, None, X, True, 0)
    # logits: [2, 0, 2, -2], [0, 1, 1, 0], [1, 1, 2, -1]
    assert indices.tolist() == [[0, 2], [1, 2], [2, 0]]
    assert close(weights[0], [0.5, 0.5])
    logits = X.double() @ W_GATE.double().T
    probs = torch.softmax(logits, -1)
    f = torch.tensor([2, 1, 3, 0], dtype=torch.float64) / 6
    assert close(aux, 4 * (f * probs.mean(0)).sum())


@points(1)
@pytest.mark.task("5.3")
def test_5_3_noise_only_in_training_and_reproducible(student):
    """A noisy router adds no noise in eval mode, and seeded noise in training.

    Training with the same seed twice gives the same routing, following
    logits + randn(generator) * softplus(w_noise(x))."""
    w_noise = torch.full((4, 2), 1.0)
    weights, indices, _ = run_probe(student, route, W_GATE, w_noise, X, False, 0)
    assert indices.tolist() == [[0, 2], [1, 2], [2, 0]]  # eval: no noise
    noise = torch.randn((3, 4), generator=torch.Generator().manual_seed(7))
    logits = X @ W_GATE.T + noise * F.softplus(X @ w_noise.T)
    expected = logits.sort(dim=-1, descending=True, stable=True).indices[:, :2]
    for call in ("first", "second"):  # the same seed twice: the same noise
        weights, indices, _ = run_probe(student, route, W_GATE, w_noise, X, True, 7)
        assert indices.tolist() == expected.tolist(), f"{call} call with seed 7: {indices}"
        assert close(weights, torch.softmax(logits.double().gather(-1, expected), -1))


# -------------------------------------------------------------- Task 5.4 MoELayer --
def layer_weights(seed):
    """Seeded weights for MoELayer(3, 5, 4, 2), named as its state_dict names them."""
    g = torch.Generator().manual_seed(seed)
    state = {"router.w_gate.weight": torch.randn(4, 3, generator=g)}
    for e in range(4):
        state[f"experts.{e}.w_in.weight"] = torch.randn(5, 3, generator=g)
        state[f"experts.{e}.w_in.bias"] = torch.randn(5, generator=g)
        state[f"experts.{e}.w_out.weight"] = torch.randn(3, 5, generator=g)
        state[f"experts.{e}.w_out.bias"] = torch.randn(3, generator=g)
    return state


def per_token_sum(state, x, k):
    """y_t = sum_j weights[t, j] * experts[indices[t, j]](x_t), token by token, in float64
    (slow but obviously right): weights are the softmax of the top-k logits."""
    w = {name: value.double() for name, value in state.items()}
    flat = x.reshape(-1, x.shape[-1]).double()
    logits = flat @ w["router.w_gate.weight"].T
    indices = logits.sort(dim=-1, descending=True, stable=True).indices[:, :k]
    weights = torch.softmax(logits.gather(-1, indices), -1)

    def expert(e, row):
        hidden = F.silu(w[f"experts.{e}.w_in.weight"] @ row + w[f"experts.{e}.w_in.bias"])
        return w[f"experts.{e}.w_out.weight"] @ hidden + w[f"experts.{e}.w_out.bias"]

    rows = [sum(weights[t, j] * expert(int(indices[t, j]), flat[t]) for j in range(k))
            for t in range(flat.shape[0])]
    return torch.stack(rows).reshape(x.shape)


def layer_run(moe, state, x):
    """MoELayer(3, 5, 4, 2) with the given weights; rows and calls each expert received."""
    layer = moe.MoELayer(3, 5, 4, 2)
    layer.load_state_dict(state)
    layer.eval()
    rows = [0, 0, 0, 0]
    calls = [0, 0, 0, 0]

    def count(e):
        def hook(module, args):
            rows[e] += args[0].shape[0]
            calls[e] += 1
        return hook

    for e, expert in enumerate(layer.experts):
        expert.register_forward_pre_hook(count(e))
    y, aux = layer(x)
    return y, aux, rows, calls


@points(2)
@pytest.mark.task("5.4")
def test_5_4_layer_equals_the_per_token_sum(student):
    """y_t = sum_j weights[t, j] * experts[indices[t, j]](x_t); y has x's shape [2, 3, 3]."""
    x = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(1))
    state = layer_weights(0)
    y, aux, _, _ = run_probe(student, layer_run, state, x)
    assert y.shape == x.shape
    assert close(y, per_token_sum(state, x, 2))
    assert aux.shape == ()


@points(2)
@pytest.mark.task("5.4")
def test_5_4_each_expert_runs_once_on_its_tokens(student):
    """6 tokens, k=2: the experts see 12 rows in all, each expert at most one call."""
    x = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(1))
    _, _, rows, calls = run_probe(student, layer_run, layer_weights(0), x)
    assert sum(rows) == 6 * 2, f"rows per expert {rows}: should total T*k = 12"
    assert max(calls) <= 1, f"calls per expert {calls}: call each expert once"
