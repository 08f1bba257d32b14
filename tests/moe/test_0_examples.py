"""One fixed example each for the router's noise and the layer's dispatch (Tasks 5.3, 5.4).

These run first: a wrong router or layer is usually caught here in one call,
before the property-based tests draw their many inputs. Task numbers come from
the test names (test_5_3_..., test_5_4_...).
"""

import pytest
import torch

from grader.kit.checks import assert_close, assert_tensor
from grader.kit.probes import run_probe
from tests.moe.expect import (
    check_routing,
    dense_moe,
    forward,
    noiseless,
    noisy_logits,
    routed_rows,
    run_router,
    seeded,
    sorted_rows,
    spec_aux_loss,
    spec_gating,
)
from tests.moe.tolerances import MOE_OUTPUT

points = pytest.mark.points

W_GATE = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [1.0, 1.0, 0.0], [-1.0, 0.5, 1.0]])
W_NOISE = torch.tensor([[0.5, -0.25, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.75, 0.0, 1.0]])
X = torch.tensor([[[1.0, 0.0, 0.5], [0.0, -1.0, 1.0], [0.5, 0.5, 0.0]],
                  [[-1.0, 1.0, 1.0], [1.0, 1.0, -0.5], [0.0, 0.0, 1.0]]])   # [2, 3, d_model=3]


@points(1)
@pytest.mark.task("5.3")
def test_5_3_noisy_router_example_eval_then_training(student):
    """A noisy router: no noise in eval mode; in training, the seeded noise of SPEC §3.5."""
    sizes, seed = (3, 4, 2), 1234
    out = run_probe(student, run_router, sizes, W_GATE, W_NOISE, X, False, seed, False, None)
    check_routing(out, noiseless(W_GATE, X, 2), dict(mode="eval"))
    logits = noisy_logits(W_GATE, W_NOISE, X, seed)
    weights, indices = spec_gating(logits, 2)
    expected = weights, indices, spec_aux_loss(torch.softmax(logits, dim=-1), indices)
    out = run_probe(student, run_router, sizes, W_GATE, W_NOISE, X, True, seed, False, None)
    check_routing(out, expected, dict(mode="train", seed=seed))


@points(1)
@pytest.mark.task("5.4")
def test_5_4_layer_example_output_and_dispatch(student):
    """6 tokens [2, 3, 3], 4 experts, k=2: y is the per-token sum; one call per expert."""
    state = {"router.w_gate.weight": W_GATE}
    for e in range(4):
        state[f"experts.{e}.w_in.weight"] = seeded(10 * e, 5, 3)
        state[f"experts.{e}.w_in.bias"] = seeded(10 * e + 1, 5)
        state[f"experts.{e}.w_out.weight"] = seeded(10 * e + 2, 3, 5)
        state[f"experts.{e}.w_out.bias"] = seeded(10 * e + 3, 3)
    case = {"sizes": [3, 5, 4, 2], "state": state, "x": X}
    out = forward(student, case)
    assert_tensor(out["y"], dtype=torch.float32, shape=X.shape, what="y")
    y_ref, aux_ref = dense_moe(state, X, 2)
    assert_close(out["y"], y_ref, "y", tol=MOE_OUTPUT)
    assert_close(out["aux"], aux_ref, "aux_loss", tol=MOE_OUTPUT)
    calls = [e for e, _ in out["calls"]]
    assert len(calls) == len(set(calls)), f"experts called per forward, in order: {calls}"
    for e, rows_ref in enumerate(routed_rows(case)):
        rows = next((rows for f, rows in out["calls"] if f == e), rows_ref[:0])
        assert sorted_rows(rows) == sorted_rows(rows_ref), (
            f"expert {e} got {rows.shape[0]} rows; {rows_ref.shape[0]} tokens are routed to it")
