"""Hidden properties of LoRALinear: init, forward, delta_weight (Task 2.1, SPEC §3.2)."""

import itertools
import math
import re

import pytest
import torch
from hypothesis import assume, given

from grader.kit.checks import assert_all, assert_equal, assert_raises, assert_tensor
from grader.kit.probes import run_probe
from tests.lora import probes
from tests.lora.cases import (
    Layer,
    assert_close_to,
    assume_update_matters,
    base64,
    delta64,
    delta_magnitude,
    dyadic,
    forward64,
    layers,
    magnitude,
)

pytestmark = pytest.mark.task("2.1")
points = pytest.mark.points


def run_forward(student, layer, *, A=None, B=None, dropout=0.0, mode="train", calls=1, x=None):
    return run_probe(student, probes.forward, layer.weight, layer.bias, A, B,
                     layer.x if x is None else x, layer.r, layer.alpha, dropout, mode, calls)


# ---------------------------------------------------------- bad arguments --
BAD_ARGUMENTS = [
    (dict(r=0), "r"), (dict(r=-2), "r"),
    (dict(alpha=0.0), "alpha"), (dict(alpha=-1.0), "alpha"), (dict(alpha=float("nan")), "alpha"),
    (dict(dropout=-0.1), "dropout"), (dict(dropout=1.0), "dropout"),
    (dict(dropout=1.5), "dropout"), (dict(dropout=float("nan")), "dropout"),
]


@points(2)
@pytest.mark.parametrize("bad, name", BAD_ARGUMENTS, ids=lambda v: repr(v))
def test_bad_r_alpha_or_dropout_raise_value_error_naming_the_argument(student, bad, name):
    """r < 1, alpha <= 0 or nan, dropout outside [0, 1) raise ValueError naming the argument."""
    arguments = dict(r=2, alpha=1.0, dropout=0.0) | bad
    weight = dyadic((3, 4), 0)
    error = assert_raises(ValueError, run_probe, student, probes.layer_report, weight, None,
                          arguments["r"], arguments["alpha"], arguments["dropout"],
                          what=f"LoRALinear(base, **{arguments})")
    assert re.search(rf"\b{name}\b", str(error)), \
        f"the ValueError should name {name!r}; its message was: {error}"


@points(1)
def test_a_non_integer_rank_is_rejected(student):
    """r = 2.5 raises ValueError or TypeError (r must be an int)."""
    assert_raises((ValueError, TypeError), run_probe, student, probes.layer_report,
                  dyadic((3, 4), 0), None, 2.5, 1.0, 0.0, what="LoRALinear(base, r=2.5)")


# ------------------------------------------------- dropout, deterministic --
def dropout_layer(seed: int):
    """fp32, d_in = 4 nonzero inputs in 8 rows, adapters that mix every input."""
    d_in, d_out, r = 4, 5, 3
    return Layer(weight=dyadic((d_out, d_in), seed + 1), bias=dyadic((d_out,), seed + 2),
                 A=dyadic((r, d_in), seed + 3, nonzero=True),
                 B=dyadic((d_out, r), seed + 4, nonzero=True),
                 x=dyadic((8, d_in), seed, nonzero=True), r=r, alpha=3.0)


def best_masks(layer, delta, p):
    """For each row, the keep-mask m in {0,1}^d_in whose branch s*(m*x/(1-p)) A.T B.T is
    closest to `delta`, and that distance."""
    d_in = layer.x.shape[-1]
    masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=d_in)), dtype=torch.float64)
    x = layer.x.double()                                        # [N, d_in]
    branch = (masks[None] * x[:, None] / (1 - p)) @ layer.A.double().T @ layer.B.double().T
    branch = layer.scaling * branch                             # [N, 2^d_in, d_out]
    distance = (branch - delta.double()[:, None]).abs().amax(-1)  # [N, 2^d_in]
    best = distance.argmin(-1)
    return masks[best], distance.gather(1, best[:, None]).squeeze(1)


@points(2)
@pytest.mark.parametrize("seed", [11, 23])
def test_train_mode_branch_is_dropout_of_x_then_A_then_B(student, seed):
    """In train mode the LoRA branch is s * dropout(x) @ A.T @ B.T: each input dropped or
    scaled by 1/(1-p), before A (not after it), and the base path kept whole."""
    layer, p = dropout_layer(seed), 0.5
    out = run_forward(student, layer, A=layer.A, B=layer.B, dropout=p, mode="train", calls=2)
    for y in out["y"]:
        assert_tensor(y, dtype=torch.float32, shape=(8, 5), what="train-mode output")
        delta = y.double() - base64(layer)
        _, distance = best_masks(layer, delta, p)
        assert_all(distance <= 1e-4, "a row of y - base(x) is not s * (m * x / (1 - p)) @ A.T "
                   "@ B.T for any keep-mask m", distance=distance, x=layer.x, y=y)


@points(1)
@pytest.mark.parametrize("seed", [11, 23])
def test_train_mode_dropout_actually_drops_inputs(student, seed):
    """In train mode with dropout 0.5, some inputs of the LoRA branch are dropped (8 rows x 4)."""
    layer, p = dropout_layer(seed), 0.5
    out = run_forward(student, layer, A=layer.A, B=layer.B, dropout=p, mode="train", calls=1)
    y = out["y"][0]
    assert_tensor(y, dtype=torch.float32, shape=(8, 5), what="train-mode output")
    masks, distance = best_masks(layer, y.double() - base64(layer), p)
    kept_everything = bool(((masks == 1).all(-1) & (distance <= 1e-4)).all())
    assert not kept_everything, "no input was dropped in 32 draws with p = 0.5 (train mode)"


# ------------------------------------------------------------ a fresh layer --
@points(3)
@given(layer=layers())
def test_a_fresh_layer_returns_exactly_the_base_output(student, layer):
    """B = 0 at init: a fresh LoRALinear returns base(x) bit for bit, in base's dtype."""
    out = run_forward(student, layer)
    expected = torch.nn.functional.linear(layer.x, layer.weight, layer.bias)
    assert_equal(out["y"][0], expected, "fresh layer output vs base(x)", layer=layer)


@points(1)
@given(layer=layers(max_batch_dims=0))
def test_lora_A_and_lora_B_are_parameters_of_the_specified_shapes_and_dtype(student, layer):
    """lora_A is an nn.Parameter [r, d_in], lora_B one of [d_out, r], both in W's dtype."""
    report = run_probe(student, probes.layer_report, layer.weight, layer.bias, layer.r,
                       layer.alpha, 0.0)
    d_out, d_in = layer.weight.shape
    assert_tensor(report["A"], dtype=layer.dtype, shape=(layer.r, d_in), what="lora_A")
    assert_tensor(report["B"], dtype=layer.dtype, shape=(d_out, layer.r), what="lora_B")
    assert report["A_is_parameter"] and report["B_is_parameter"], \
        "lora_A and lora_B must be nn.Parameter (so optimizers and state_dict see them)"
    assert report["base_is_given_linear"], "self.base must be the nn.Linear passed in"


@points(1)
@given(layer=layers(max_batch_dims=0))
def test_lora_B_starts_at_zero_and_lora_A_does_not(student, layer):
    """lora_B is all zeros at init; lora_A is not (else no gradient ever reaches B)."""
    report = run_probe(student, probes.layer_report, layer.weight, layer.bias, layer.r,
                       layer.alpha, 0.0)
    assert_tensor(report["B"], dtype=layer.dtype, what="lora_B")
    assert_equal(report["B"], torch.zeros_like(report["B"]), "lora_B at init", layer=layer)
    assert bool((report["A"] != 0).any()), "lora_A is all zeros at init"


@points(1)
def test_lora_A_is_kaiming_uniform_with_a_sqrt5(student):
    """lora_A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)): kaiming_uniform_(a=sqrt(5)), like nn.Linear."""
    d_in, d_out, r = 64, 3, 16
    report = run_probe(student, probes.layer_report, dyadic((d_out, d_in), 0), None, r, 1.0, 0.0)
    A = report["A"]
    assert_tensor(A, dtype=torch.float32, shape=(r, d_in), what="lora_A")
    bound = 1 / math.sqrt(d_in)
    assert_all(A.abs() <= bound * (1 + 1e-6), f"|lora_A| above the bound 1/sqrt(d_in) = {bound:g}",
               A=A)
    std, expected_std = A.double().std().item(), bound / math.sqrt(3)
    assert abs(std - expected_std) < 0.15 * expected_std, \
        f"lora_A's std is {std:.4g}; U(-{bound:.4g}, {bound:.4g}) has std {expected_std:.4g}"
    assert abs(A.double().mean().item()) < 0.15 * expected_std, "lora_A's mean is not near 0"


@points(1)
@given(layer=layers(max_batch_dims=0))
def test_scaling_is_alpha_over_r(student, layer):
    """layer.scaling == alpha / r, a Python float."""
    report = run_probe(student, probes.layer_report, layer.weight, layer.bias, layer.r,
                       layer.alpha, 0.0)
    assert isinstance(report["scaling"], float), f"scaling should be a float: {report['scaling']}"
    assert report["scaling"] == pytest.approx(layer.alpha / layer.r, rel=1e-12), \
        f"scaling is {report['scaling']}, expected alpha / r = {layer.alpha} / {layer.r}"
    assert report["merged"], "a fresh layer must have merged == False"


# ------------------------------------------------------------------ forward --
@points(4)
@given(layer=layers())
def test_forward_equals_the_lora_formula(student, layer):
    """forward(x) = x @ W.T + b + (alpha/r) * x @ A.T @ B.T for any batch shape and dtype."""
    assume_update_matters(layer)
    out = run_forward(student, layer, A=layer.A, B=layer.B)
    assert_close_to(out["y"][0], forward64(layer), magnitude(layer), layer.dtype,
                    "forward(x)", layer=layer)


@points(1)
@given(layer=layers(dtypes=(torch.float32,)))
def test_forward_changes_neither_its_input_nor_the_base_weight(student, layer):
    """forward leaves x and base.weight as they were."""
    out = run_forward(student, layer, A=layer.A, B=layer.B)
    assert out["x_unchanged"], "forward modified its input x in place"
    assert_equal(out["weight"], layer.weight, "base.weight after forward", layer=layer)


@points(2)
@given(layer=layers())
def test_delta_weight_is_scaling_times_B_at_A(student, layer):
    """delta_weight() = (alpha/r) * B @ A, shape [d_out, d_in], in W's dtype."""
    assume(bool((delta64(layer) != 0).any()))
    got = run_probe(student, probes.delta_weight, layer.weight, layer.bias, layer.A, layer.B,
                    layer.r, layer.alpha)
    expected = delta64(layer)
    assert_close_to(got, expected, delta_magnitude(layer), layer.dtype, "delta_weight()",
                    layer=layer)


# ---------------------------------------------------------------- training --
@points(2)
@given(layer=layers(dtypes=(torch.float32,)))
def test_only_lora_A_and_lora_B_receive_gradients(student, layer):
    """After backward, base.weight and base.bias have no grad (frozen); lora_A and lora_B do."""
    g = dyadic(layer.x.shape[:-1] + (layer.weight.shape[0],), 7)
    out = run_probe(student, probes.gradients, layer.weight, layer.bias, layer.A, layer.B,
                    layer.x, g, layer.r, layer.alpha)
    assert not any(out["base_requires_grad"]), "base.weight / base.bias must be frozen"
    for name, grad in out["base_grad"].items():
        assert grad is None, f"base.{name} received a gradient; it must be frozen"
    trainable = {n for n, grad in out["grad"].items() if grad is not None}
    assert trainable == {"lora_A", "lora_B"}, \
        f"parameters with gradients: {sorted(trainable)}; expected exactly lora_A and lora_B"


@points(2)
@given(layer=layers(dtypes=(torch.float32,)))
def test_gradients_of_lora_A_and_lora_B_match_the_chain_rule(student, layer):
    """For L = sum(y * G): dL/dB = s * G.T @ (x A.T), dL/dA = s * (G B).T @ x, s = alpha/r."""
    g = dyadic(layer.x.shape[:-1] + (layer.weight.shape[0],), 7)
    out = run_probe(student, probes.gradients, layer.weight, layer.bias, layer.A, layer.B,
                    layer.x, g, layer.r, layer.alpha)
    d_in = layer.x.shape[-1]
    x2, g2 = layer.x.double().reshape(-1, d_in), g.double().reshape(-1, g.shape[-1])
    A, B, s = layer.A.double(), layer.B.double(), layer.scaling
    expected = {"lora_B": s * g2.T @ (x2 @ A.T), "lora_A": s * (g2 @ B).T @ x2}
    mags = {"lora_B": s * g2.abs().T @ (x2.abs() @ A.abs().T),
            "lora_A": s * (g2.abs() @ B.abs()).T @ x2.abs()}
    for name in ("lora_A", "lora_B"):
        grad = out["grad"].get(name)
        assert grad is not None, f"{name} received no gradient"
        assert_close_to(grad, expected[name], mags[name], torch.float32, f"{name}.grad",
                        layer=layer)


@points(1)
@given(layer=layers(max_batch_dims=0))
def test_trainable_parameter_count_is_r_times_d_in_plus_d_out(student, layer):
    """Parameters with requires_grad hold r * (d_in + d_out) numbers, no more."""
    report = run_probe(student, probes.layer_report, layer.weight, layer.bias, layer.r,
                       layer.alpha, 0.0)
    d_out, d_in = layer.weight.shape
    trainable = sum(report["numel"][n] for n, flag in report["requires_grad"].items() if flag)
    assert trainable == layer.r * (d_in + d_out), \
        f"{trainable} trainable numbers; expected r * (d_in + d_out) = {layer.r * (d_in + d_out)}"


# ----------------------------------------------------------------- dropout --
@points(2)
@given(layer=layers())
def test_eval_mode_ignores_dropout(student, layer):
    """In eval mode, a layer with dropout 0.5 computes the formula without dropout, every call."""
    assume_update_matters(layer)
    out = run_forward(student, layer, A=layer.A, B=layer.B, dropout=0.5, mode="eval", calls=2)
    for y in out["y"]:
        assert_close_to(y, forward64(layer), magnitude(layer), layer.dtype,
                        "forward(x) in eval mode with dropout 0.5", layer=layer)
    assert_equal(out["y"][1], out["y"][0], "a second forward in eval mode", layer=layer)


@points(2)
@given(layer=layers())
def test_dropout_never_touches_the_base_path(student, layer):
    """In train mode with dropout 0.5 and B = 0, the output is still exactly base(x)."""
    out = run_forward(student, layer, dropout=0.5, mode="train", calls=2)
    expected = torch.nn.functional.linear(layer.x, layer.weight, layer.bias)
    for y in out["y"]:
        assert_equal(y, expected, "train-mode output with lora_B = 0 vs base(x)", layer=layer)
