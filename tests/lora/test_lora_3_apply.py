"""Hidden properties of apply_lora, lora_state_dict, merge_lora, unmerge_lora (Task 2.3)."""

import re

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from grader.kit.checks import assert_equal, assert_raises, assert_tensor
from grader.kit.probes import run_probe
from tests.lora import probes
from tests.lora.cases import dyadic
from tests.lora.models import LINEARS, MODEL, TARGETS, adapters_for, matched, model_state

pytestmark = pytest.mark.task("2.3")
points = pytest.mark.points
LORA_KEYS = ("lora_A", "lora_B")


def apply(student, targets, kind="list", r=2, alpha=4.0, dropout=0.0):
    return run_probe(student, probes.apply_report, MODEL, model_state(), list(targets), kind,
                     r, alpha, dropout)


@st.composite
def target_lists(draw):
    """1 to 4 targets that match at least one Linear, and how to pass them."""
    targets = draw(st.lists(st.sampled_from(TARGETS), min_size=1, max_size=4, unique=True))
    assume(matched(targets))
    if len(targets) == 1 and draw(st.booleans()):
        return targets, "str"
    return targets, draw(st.sampled_from(["list", "tuple", "set", "generator"]))


def original_key(key: str, wrapped) -> str:
    """The model's key before wrapping: "a.q_proj.base.weight" -> "a.q_proj.weight"."""
    for name in wrapped:
        for leaf in ("weight", "bias"):
            if key == f"{name}.base.{leaf}":
                return f"{name}.{leaf}"
    return key


# ------------------------------------------------------------------ which --
@points(1)
def test_apply_lora_returns_the_model_it_was_given(student):
    """apply_lora works in place and returns the same model object."""
    assert apply(student, ["q_proj"])["returns_model"], "apply_lora must return `model` itself"


@points(2)
def test_a_name_that_only_contains_a_target_is_not_matched(student):
    """"q_proj" wraps layers.i.attn.q_proj only: not xq_proj, not q_proj_gate (no substrings)."""
    types = apply(student, ["q_proj"])["types"]
    for name in LINEARS:
        expected = "LoRALinear" if name.endswith(".q_proj") else "Linear"
        assert types.get(name) == expected, \
            f"target 'q_proj': {name} should be a {expected}, it is a {types.get(name)}"


@points(1)
def test_a_bare_string_is_one_target(student):
    """target_modules="q_proj" means the one target "q_proj", not its characters."""
    report = run_probe(student, probes.apply_report, MODEL, model_state(), ["q_proj"], "str",
                       2, 1.0, 0.0)
    wrapped = sorted(n for n, t in report["types"].items() if t == "LoRALinear")
    assert wrapped == ["layers.0.attn.q_proj", "layers.1.attn.q_proj"], f"wrapped {wrapped}"


@points(2)
def test_no_match_raises_value_error_listing_the_linear_names(student):
    """Targets matching no Linear ("proj", "attn", "norm") raise ValueError naming every Linear."""
    error = assert_raises(ValueError, apply, student, ["proj", "attn", "norm"],
                          what="apply_lora(model, ['proj', 'attn', 'norm'], r=2)")
    missing = [name for name in LINEARS if not re.search(rf"{re.escape(name)}\b", str(error))]
    assert not missing, f"the ValueError should list the Linear names; missing {missing}: {error}"


# ------------------------------------------------------------- checkpoints --
ROUNDTRIP_TARGETS = ["q_proj", "v_proj", "mlp.2", "lm_head"]


@points(2)
def test_lora_state_dict_holds_exactly_the_lora_entries(student):
    """lora_state_dict has exactly the lora_A/lora_B keys of model.state_dict(), same values."""
    names = matched(ROUNDTRIP_TARGETS)
    adapters = adapters_for(names, r=3)
    out = run_probe(student, probes.state_dict_roundtrip, MODEL, model_state(),
                    ROUNDTRIP_TARGETS, 3, adapters)
    saved = out["saved"]
    assert sorted(saved) == sorted(adapters), (
        f"lora_state_dict keys: extra {sorted(set(saved) - set(adapters))}, "
        f"missing {sorted(set(adapters) - set(saved))}")
    for key, value in adapters.items():
        assert_tensor(saved[key], dtype=torch.float32, shape=value.shape, what=key)
        assert_equal(saved[key], value, f"lora_state_dict()[{key!r}]")


@points(2)
def test_lora_state_dict_loads_back_into_a_fresh_model(student):
    """load_state_dict(lora_state_dict(m), strict=False) into a fresh adapted model restores
    every adapter, with no unexpected keys."""
    names = matched(ROUNDTRIP_TARGETS)
    adapters = adapters_for(names, r=3)
    out = run_probe(student, probes.state_dict_roundtrip, MODEL, model_state(),
                    ROUNDTRIP_TARGETS, 3, adapters)
    assert out["unexpected"] == [], f"unexpected keys when loading: {out['unexpected']}"
    for key, value in adapters.items():
        assert key in out["fresh"], f"{key} missing from the fresh model"
        assert_equal(out["fresh"][key], value, f"{key} after loading into a fresh model")


# ----------------------------------------------------------------- merging --
MERGE_TARGETS = ["q_proj", "mlp.0", "lm_head"]


def merge_run(student):
    names = matched(MERGE_TARGETS)
    adapters = adapters_for(names, r=2)
    inputs = {name: dyadic((3, LINEARS[name][0]), i) for i, name in enumerate(LINEARS)}
    out = run_probe(student, probes.merge_model, MODEL, model_state(), MERGE_TARGETS, 2, 4.0,
                    adapters, inputs)
    return names, adapters, inputs, out


def expected_output(name, x, adapters, state):
    y = x.double() @ state[f"{name}.weight"].double().T
    if f"{name}.bias" in state:
        y = y + state[f"{name}.bias"].double()
    if f"{name}.lora_A" in adapters:
        A, B = adapters[f"{name}.lora_A"].double(), adapters[f"{name}.lora_B"].double()
        y = y + 2.0 * (x.double() @ A.T) @ B.T       # scaling = alpha / r = 4 / 2
    return y


@points(2)
def test_merge_lora_merges_every_adapter_and_keeps_the_outputs(student):
    """After merge_lora (twice), each adapted Linear's weight is W + s B A and every Linear's
    output is unchanged."""
    names, adapters, inputs, out = merge_run(student)
    state = model_state()
    for name, x in inputs.items():
        expected = expected_output(name, x, adapters, state)
        for stage in ("unmerged", "merged"):
            got = out[stage][name]
            assert_tensor(got, dtype=torch.float32, shape=expected.shape, what=f"{name}({stage})")
            assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-5), \
                f"{name}: output {stage} differs from the formula"
    for name in names:
        A, B = adapters[f"{name}.lora_A"].double(), adapters[f"{name}.lora_B"].double()
        expected_w = state[f"{name}.weight"].double() + 2.0 * B @ A
        got_w = out["merged_state"][f"{name}.base.weight"]
        assert torch.allclose(got_w.double(), expected_w, rtol=1e-6, atol=1e-6), \
            f"{name}.base.weight after merge_lora is not W + (alpha/r) B @ A"


@points(2)
def test_unmerge_lora_restores_every_base_weight(student):
    """After merge_lora then unmerge_lora (twice), every weight is W again and outputs too."""
    names, adapters, inputs, out = merge_run(student)
    state = model_state()
    for name in names:
        got_w = out["unmerged_state"][f"{name}.base.weight"]
        assert torch.allclose(got_w.double(), state[f"{name}.weight"].double(), rtol=1e-6,
                              atol=1e-6), f"{name}.base.weight after unmerge_lora is not W"
    for name, x in inputs.items():
        expected = expected_output(name, x, adapters, state)
        assert torch.allclose(out["unmerged_again"][name].double(), expected, rtol=1e-5,
                              atol=1e-5), f"{name}: output after unmerge_lora is wrong"


# ---------------------------------------------------------------- training --
@points(3)
def test_a_few_sgd_steps_lower_the_loss_and_leave_the_base_bit_identical(student):
    """30 SGD steps on a tiny regression lower the loss by a third; base weights do not move."""
    g = torch.Generator().manual_seed(5)
    w1, b1 = torch.randn(8, 4, generator=g) / 2, torch.randn(8, generator=g) / 4
    w2, b2 = torch.randn(3, 8, generator=g) / 3, torch.randn(3, generator=g) / 4
    x = torch.randn(32, 4, generator=g)
    y = torch.tanh(x @ torch.randn(4, 3, generator=g))
    out = run_probe(student, probes.train_regression, w1, b1, w2, b2, x, y, 4, 8.0, 30, 0.05)
    losses = out["losses"]
    assert losses[-1] < 0.67 * losses[0], f"loss went from {losses[0]:.4g} to {losses[-1]:.4g}"
    for key, value in {"0.base.weight": w1, "0.base.bias": b1, "2.base.weight": w2,
                       "2.base.bias": b2}.items():
        assert key in out["state"], f"{key} missing from the trained model's state_dict"
        assert_equal(out["state"][key], value, f"{key} after training")


# ------------------------------------------- drawn targets (hypothesis) --
@points(3)
@given(case=target_lists())
def test_exactly_the_linears_matching_a_target_are_wrapped(student, case):
    """A Linear is wrapped iff its name equals a target or ends with "." + target."""
    targets, kind = case
    report = apply(student, targets, kind)
    expected = set(matched(targets))
    wrapped = {n for n, t in report["types"].items() if t == "LoRALinear"}
    assert wrapped == expected, (
        f"targets {targets} (passed as a {kind}): wrapped {sorted(wrapped)}, "
        f"expected {sorted(expected)}")
    unexpected_types = {n: report["types"].get(n) for n in LINEARS if n not in expected
                        and report["types"].get(n) != "Linear"}
    assert not unexpected_types, f"non-target Linears were changed: {unexpected_types}"


@points(2)
@given(case=target_lists(), r=st.integers(1, 4), alpha=st.sampled_from([1.0, 8.0, 3.0]))
def test_wrapped_layers_get_the_given_r_and_alpha(student, case, r, alpha):
    """Every wrapped Linear gets lora_A [r, d_in], lora_B [d_out, r] and scaling alpha / r."""
    targets, kind = case
    report = apply(student, targets, kind, r=r, alpha=alpha)
    for name in matched(targets):
        d_in, d_out, _ = LINEARS[name]
        got = report["adapters"].get(name)
        expected = {"A": [r, d_in], "B": [d_out, r], "scaling": alpha / r}
        assert got is not None and got["A"] == expected["A"] and got["B"] == expected["B"] \
            and got["scaling"] == pytest.approx(expected["scaling"], rel=1e-12), \
            f"{name}: got {got}, expected {expected}"


@points(2)
@given(case=target_lists())
def test_every_original_weight_is_kept_unchanged(student, case):
    """Wrapped and non-target layers keep their weights: the base is the original Linear."""
    targets, kind = case
    report = apply(student, targets, kind)
    wrapped = matched(targets)
    state = {original_key(k, wrapped): v for k, v in report["state"].items()
             if k.rpartition(".")[2] not in LORA_KEYS}
    original = model_state()
    assert sorted(state) == sorted(original), (
        f"non-LoRA state_dict keys {sorted(set(state) ^ set(original))} differ from the "
        "model's own (wrapped layers keep theirs under <name>.base.*)")
    for key, value in original.items():
        assert_equal(state[key], value, f"{key} after apply_lora", targets=targets)


@points(2)
@given(case=target_lists())
def test_every_non_lora_parameter_is_frozen(student, case):
    """After apply_lora only lora_A / lora_B parameters have requires_grad True."""
    targets, kind = case
    flags = apply(student, targets, kind)["requires_grad"]
    wrong = {n: f for n, f in flags.items() if f != (n.rpartition(".")[2] in LORA_KEYS)}
    assert not wrong, f"requires_grad should be True exactly for lora_A/lora_B; wrong: {wrong}"
    count = sum(1 for n, f in flags.items() if f)
    assert count == 2 * len(matched(targets)), f"{count} trainable tensors for " \
        f"{len(matched(targets))} wrapped layers"
