"""Hidden properties of LoRALinear.merge / unmerge (Task 2.2, SPEC §3.2)."""

import pytest
import torch
from hypothesis import given

from grader.kit.checks import assert_equal
from grader.kit.probes import run_probe
from tests.lora import probes
from tests.lora.cases import (
    assert_close_to,
    assume_update_matters,
    delta64,
    delta_magnitude,
    forward64,
    layers,
    magnitude,
)

pytestmark = pytest.mark.task("2.2")
points = pytest.mark.points


def run_ops(student, layer, ops):
    return run_probe(student, probes.merge_sequence, layer.weight, layer.bias, layer.A, layer.B,
                     layer.x, layer.r, layer.alpha, ops)


@points(1)
@given(layer=layers(max_batch_dims=1))
def test_merged_flag_follows_merge_and_unmerge(student, layer):
    """merged is False, True after merge(), False after unmerge()."""
    states = run_ops(student, layer, ["forward", "merge", "unmerge"])
    flags = [s["merged"] for s in states]
    assert flags == [False, True, False], f"merged after forward, merge, unmerge: {flags}"


@points(2)
@given(layer=layers(max_batch_dims=1))
def test_merge_adds_delta_weight_to_the_base_weight(student, layer):
    """After merge(), base.weight = W + (alpha/r) * B @ A, in W's dtype and in place."""
    assume_update_matters(layer)
    state = run_ops(student, layer, ["merge"])[0]
    expected = layer.weight.double() + delta64(layer)
    mag = layer.weight.double().abs() + delta_magnitude(layer)
    assert_close_to(state["weight"], expected, mag, layer.dtype, "base.weight after merge()",
                    layer=layer)
    assert state["base_is_given_linear"], "merge must update the base layer, not replace it"


@points(3)
@given(layer=layers())
def test_merged_forward_equals_unmerged_forward(student, layer):
    """After merge(), forward(x) still equals x @ W.T + b + (alpha/r) x @ A.T @ B.T."""
    assume_update_matters(layer)
    unmerged, _, merged = run_ops(student, layer, ["forward", "merge", "forward"])
    for when, state in (("before merge()", unmerged), ("after merge()", merged)):
        assert_close_to(state["y"], forward64(layer), 2 * magnitude(layer), layer.dtype,
                        f"forward(x) {when}", layer=layer)


@points(2)
@given(layer=layers(max_batch_dims=1))
def test_merge_is_idempotent(student, layer):
    """merge() on a merged layer changes nothing: the weight after two merges equals one."""
    assume_update_matters(layer)
    once, twice = run_ops(student, layer, ["merge", "merge"])
    assert_equal(twice["weight"], once["weight"], "base.weight after a second merge()",
                 layer=layer)
    assert twice["merged"] is True, "merged must stay True"


@points(2)
@given(layer=layers(max_batch_dims=1))
def test_unmerge_is_idempotent(student, layer):
    """unmerge() on an unmerged layer changes nothing, also right after an unmerge()."""
    assume_update_matters(layer)
    states = run_ops(student, layer, ["unmerge", "merge", "unmerge", "unmerge"])
    assert_equal(states[0]["weight"], layer.weight, "base.weight after unmerge() of a fresh "
                 "(unmerged) layer", layer=layer)
    assert_equal(states[3]["weight"], states[2]["weight"], "base.weight after a second "
                 "unmerge()", layer=layer)
    assert states[3]["merged"] is False, "merged must stay False"


@points(2)
@given(layer=layers(max_batch_dims=1))
def test_unmerge_after_merge_restores_the_base_weight(student, layer):
    """unmerge(merge(W)) = W up to rounding in W's dtype (bit-exact only when the sums are)."""
    assume_update_matters(layer)
    restored = run_ops(student, layer, ["merge", "unmerge"])[1]["weight"]
    mag = layer.weight.double().abs() + 2 * delta_magnitude(layer)
    assert_close_to(restored, layer.weight.double(), mag, layer.dtype,
                    "base.weight after merge() then unmerge()", layer=layer)


@points(1)
@given(layer=layers())
def test_forward_after_unmerge_is_the_lora_formula_again(student, layer):
    """merge() then unmerge() then forward(x) computes the unmerged formula (B @ A once)."""
    assume_update_matters(layer)
    y = run_ops(student, layer, ["merge", "unmerge", "forward"])[2]["y"]
    assert_close_to(y, forward64(layer), 3 * magnitude(layer), layer.dtype,
                    "forward(x) after merge() and unmerge()", layer=layer)


@points(1)
@given(layer=layers(dtypes=(torch.float32,), max_batch_dims=0))
def test_merging_keeps_the_base_frozen(student, layer):
    """base.weight and base.bias keep requires_grad False through merge() and unmerge()."""
    states = run_ops(student, layer, ["merge", "unmerge"])
    assert all(s["frozen"] for s in states), \
        "a base parameter has requires_grad True after merge()/unmerge()"
