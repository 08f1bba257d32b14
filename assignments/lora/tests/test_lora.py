"""Public tests for assignment 2 (LoRA): small examples you can debug.

Run them with `grader test lora` or `pytest assignments/lora`. `student` is
your module (lora.py), imported in this process, so `pytest --pdb` and
breakpoints work. Official grading runs these same tests with your code in a
separate process: that is why each test drives your classes through a *probe*
(a plain function that builds the layers, calls your code and returns
tensors). Hidden property-based tests come on top; README.md §8 says what they check.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.kit.checks import assert_equal
from grader.kit.probes import run_probe

points = pytest.mark.points

# The handout's worked example (README.md §2): d_in = 3, d_out = 2, r = 1, alpha = 2.
W = torch.tensor([[1.0, 0.0, 2.0],
                  [0.0, 1.0, -1.0]])
BIAS = torch.tensor([0.5, -0.5])
A = torch.tensor([[1.0, 1.0, 0.0]])        # [r, d_in]
B = torch.tensor([[1.0], [-1.0]])          # [d_out, r]
X = torch.tensor([[1.0, 2.0, 3.0]])
# The same layer with r = 2 and alpha = 4, so scaling = alpha / r = 2 (not alpha = 4).
A2 = torch.tensor([[1.0, 1.0, 0.0],
                   [0.0, 1.0, 1.0]])       # [r, d_in]
B2 = torch.tensor([[1.0, 0.0],
                   [0.0, -1.0]])           # [d_out, r]


# ------------------------------------------------------------------ probes --
def worked_example(lora, weight, bias, a, b, x, ops):
    """Build LoRALinear(nn.Linear(3, 2), r=1, alpha=2) with the given A, B; run ops."""
    base = nn.Linear(3, 2)
    base.load_state_dict({"weight": weight, "bias": bias})
    layer = lora.LoRALinear(base, r=1, alpha=2.0)
    with torch.no_grad():
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    record = {}
    for op in ops:
        if op == "merge":
            layer.merge()
        elif op == "unmerge":
            layer.unmerge()
        elif op == "delta":
            record["delta"] = layer.delta_weight()
        else:
            record[op] = {"y": layer(x), "weight": layer.base.weight.clone(),
                          "merged": layer.merged}
    return record


def fresh_layer(lora, weight, bias, x, r):
    """A fresh layer: its output, its adapters and requires_grad flags."""
    base = nn.Linear(weight.shape[1], weight.shape[0])
    base.load_state_dict({"weight": weight, "bias": bias})
    layer = lora.LoRALinear(base, r, alpha=4.0)
    return {"y": layer(x), "A": layer.lora_A,
            "B": layer.lora_B,
            "requires_grad": {n: p.requires_grad for n, p in layer.named_parameters()}}


def grads_after_backward(lora, weight, bias, a, b, x):
    """Which parameters get a .grad from layer(x).sum().backward()."""
    base = nn.Linear(3, 2)
    base.load_state_dict({"weight": weight, "bias": bias})
    layer = lora.LoRALinear(base, r=1, alpha=2.0)
    with torch.no_grad():
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    layer(x).sum().backward()
    return {n: p.grad is not None for n, p in layer.named_parameters()}


def rank_two_example(lora, weight, bias, a, b, x, dropout, mode):
    """LoRALinear(nn.Linear(3, 2), r=2, alpha=4, dropout) with the given A, B, in `mode`."""
    torch.manual_seed(0)
    base = nn.Linear(3, 2)
    base.load_state_dict({"weight": weight, "bias": bias})
    layer = lora.LoRALinear(base, r=2, alpha=4.0, dropout=dropout)
    with torch.no_grad():
        layer.lora_A.copy_(a)
        layer.lora_B.copy_(b)
    layer.train(mode == "train")
    return {"y": layer(x), "delta": layer.delta_weight()}


def fresh_layer_with_dropout(lora, weight, bias, x):
    """A fresh layer (lora_B = 0) with dropout 0.5 in training mode: its output."""
    torch.manual_seed(0)
    base = nn.Linear(weight.shape[1], weight.shape[0])
    base.load_state_dict({"weight": weight, "bias": bias})
    layer = lora.LoRALinear(base, 2, alpha=4.0, dropout=0.5)
    layer.train()
    return layer(x)


def adapter_dtypes(lora, dtype):
    """The adapters' dtypes for a base Linear of `dtype`."""
    layer = lora.LoRALinear(nn.Linear(3, 2).to(dtype), 2, alpha=4.0)
    return [str(layer.lora_A.dtype), str(layer.lora_B.dtype)]


def make_layer(lora, r, alpha, dropout):
    lora.LoRALinear(nn.Linear(3, 2), r, alpha, dropout)


def tiny_model(lora, targets):
    """attn.{q_proj, xq_proj, v_proj} and mlp.{0, 2}; apply_lora(targets, r=2)."""
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "attn": nn.ModuleDict({"q_proj": nn.Linear(4, 4), "xq_proj": nn.Linear(4, 4),
                               "v_proj": nn.Linear(4, 3)}),
        "mlp": nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4)),
        "norm": nn.LayerNorm(4),
    })
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora.apply_lora(model, targets, r=2)
    return {
        "weights_before": before,
        "weights_after": {n: p.detach() for n, p in model.named_parameters()},
        "types": {n: type(m).__name__ for n, m in model.named_modules() if n},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "lora_keys": sorted(lora.lora_state_dict(model)),
    }


def tiny_model_generator_targets(lora, targets):
    """tiny_model with the targets given as a generator (any iterable of names is allowed)."""
    return tiny_model(lora, (target for target in targets))


# ------------------------------------------------ Task 2.1 LoRALinear forward --
@points(1)
@pytest.mark.task("2.1")
def test_2_1_worked_example_forward(student):
    """README §2: base(x) = [7.5, -1.5], update 2 * [3, -3], y = [13.5, -7.5]."""
    out = run_probe(student, worked_example, W, BIAS, A, B, X, ["forward"])
    assert out["forward"]["y"].tolist() == [[13.5, -7.5]]


@points(1)
@pytest.mark.task("2.1")
def test_2_1_worked_example_delta_weight(student):
    """delta_weight() = (alpha/r) * B @ A = [[2, 2, 0], [-2, -2, 0]]."""
    out = run_probe(student, worked_example, W, BIAS, A, B, X, ["delta"])
    assert out["delta"].tolist() == [[2.0, 2.0, 0.0], [-2.0, -2.0, 0.0]]


@points(1)
@pytest.mark.task("2.1")
def test_2_1_fresh_layer_returns_base_output_exactly(student):
    """lora_B starts at zero, so a fresh layer returns exactly base(x)."""
    torch.manual_seed(0)
    weight, bias, x = torch.randn(5, 7), torch.randn(5), torch.randn(2, 3, 7)
    out = run_probe(student, fresh_layer, weight, bias, x, 4)
    assert_equal(out["y"], F.linear(x, weight, bias), "a fresh layer must return base(x)")
    assert out["A"].shape == (4, 7) and out["B"].shape == (5, 4), \
        f"lora_A should be [4, 7] and lora_B [5, 4], got {list(out['A'].shape)}, " \
        f"{list(out['B'].shape)}"
    assert_equal(out["B"], torch.zeros(5, 4), "lora_B must start at zero")
    assert bool((out["A"] != 0).any()), "lora_A must not start at zero (kaiming uniform)"


@points(1)
@pytest.mark.task("2.1")
def test_2_1_only_lora_parameters_are_trainable(student):
    """base.weight and base.bias are frozen; lora_A and lora_B get gradients."""
    out = run_probe(student, grads_after_backward, W, BIAS, A, B, X)
    assert out == {"base.weight": False, "base.bias": False, "lora_A": True, "lora_B": True}


@points(1)
@pytest.mark.task("2.1")
def test_2_1_scaling_is_alpha_over_r(student):
    """r = 2, alpha = 4: scaling = 2, delta_weight() = 2 * B @ A = [[2, 2, 0], [0, -2, -2]],
    y = [7.5, -1.5] + [6, -10] = [13.5, -11.5] (scaling = alpha would give [19.5, -21.5])."""
    out = run_probe(student, rank_two_example, W, BIAS, A2, B2, X, 0.0, "eval")
    assert_equal(out["delta"], torch.tensor([[2.0, 2.0, 0.0], [0.0, -2.0, -2.0]]),
                 "delta_weight() with r = 2, alpha = 4 (scaling = alpha / r = 2)")
    assert_equal(out["y"], torch.tensor([[13.5, -11.5]]),
                 "forward with r = 2, alpha = 4 (scaling = alpha / r = 2)")


@points(1)
@pytest.mark.task("2.1")
def test_2_1_eval_mode_ignores_dropout(student):
    """With dropout = 0.5 in eval mode the r = 2 example is unchanged: y = [13.5, -11.5]."""
    out = run_probe(student, rank_two_example, W, BIAS, A2, B2, X, 0.5, "eval")
    assert_equal(out["y"], torch.tensor([[13.5, -11.5]]),
                 "eval-mode forward with dropout 0.5 (dropout is off in eval mode)")


@points(1)
@pytest.mark.task("2.1")
def test_2_1_dropout_in_training_leaves_the_base_path_alone(student):
    """Dropout acts on the LoRA branch's input only: a fresh layer (lora_B = 0) in
    training mode with dropout 0.5 still returns exactly base(x)."""
    torch.manual_seed(0)
    weight, bias, x = torch.randn(4, 6), torch.randn(4), torch.randn(3, 6)
    y = run_probe(student, fresh_layer_with_dropout, weight, bias, x)
    assert_equal(y, F.linear(x, weight, bias), "a fresh layer in training mode must return "
                 "base(x), whatever dropout drops")


@points(1)
@pytest.mark.task("2.1")
def test_2_1_adapters_take_the_base_dtype(student):
    """A float64 base Linear gets float64 lora_A and lora_B."""
    got = run_probe(student, adapter_dtypes, torch.float64)
    assert got == ["torch.float64", "torch.float64"], \
        f"lora_A and lora_B should have the base's dtype torch.float64, got {got}"


@points(1)
@pytest.mark.parametrize("r, alpha, dropout", [(0, 1.0, 0.0), (2, 0.0, 0.0), (2, 1.0, 1.0)])
@pytest.mark.task("2.1")
def test_2_1_bad_hyperparameters_raise_value_error(student, r, alpha, dropout):
    """r = 0, alpha = 0 or dropout = 1 raise ValueError."""
    with pytest.raises(ValueError):
        run_probe(student, make_layer, r, alpha, dropout)


# -------------------------------------------------- Task 2.2 merge / unmerge --
@points(1)
@pytest.mark.task("2.2")
def test_2_2_merge_folds_the_update_into_the_weight(student):
    """merge(): W becomes [[3, 2, 2], [-2, -1, -1]] and the output stays [13.5, -7.5]."""
    out = run_probe(student, worked_example, W, BIAS, A, B, X, ["merge", "merged"])
    assert out["merged"]["weight"].tolist() == [[3.0, 2.0, 2.0], [-2.0, -1.0, -1.0]]
    assert out["merged"]["y"].tolist() == [[13.5, -7.5]]
    assert out["merged"]["merged"] is True


@points(1)
@pytest.mark.task("2.2")
def test_2_2_merge_twice_then_unmerge_restores_the_weight(student):
    """merge() twice adds the update once; unmerge() restores W."""
    out = run_probe(student, worked_example, W, BIAS, A, B, X,
                    ["merge", "merge", "twice", "unmerge", "restored"])
    assert out["twice"]["weight"].tolist() == [[3.0, 2.0, 2.0], [-2.0, -1.0, -1.0]]
    assert_equal(out["restored"]["weight"], W, "unmerge() must restore the base weight")
    assert out["restored"]["y"].tolist() == [[13.5, -7.5]]


@points(1)
@pytest.mark.task("2.2")
def test_2_2_unmerge_of_an_unmerged_layer_changes_nothing(student):
    """unmerge() before any merge() leaves W and the output [13.5, -7.5] as they are."""
    out = run_probe(student, worked_example, W, BIAS, A, B, X, ["unmerge", "after"])
    assert_equal(out["after"]["weight"], W, "unmerge() of an unmerged layer must keep W")
    assert out["after"]["y"].tolist() == [[13.5, -7.5]], \
        f"output after a needless unmerge(): expected [[13.5, -7.5]], got {out['after']['y']}"
    assert out["after"]["merged"] is False, "merged should stay False"


# --------------------------------------------------------- Task 2.3 apply_lora --
@points(1)
@pytest.mark.task("2.3")
def test_2_3_targets_match_whole_name_parts(student):
    """"q_proj" wraps attn.q_proj but not attn.xq_proj; "mlp.0" wraps the first MLP layer."""
    out = run_probe(student, tiny_model, ["q_proj", "mlp.0"])
    wrapped = sorted(n for n, t in out["types"].items() if t == "LoRALinear")
    assert wrapped == ["attn.q_proj", "mlp.0"]


@points(1)
@pytest.mark.task("2.3")
def test_2_3_only_lora_parameters_stay_trainable(student):
    """After apply_lora every parameter except lora_A / lora_B is frozen."""
    out = run_probe(student, tiny_model, ["q_proj", "mlp.0"])
    trainable = sorted(n for n, flag in out["requires_grad"].items() if flag)
    assert trainable == ["attn.q_proj.lora_A", "attn.q_proj.lora_B",
                         "mlp.0.lora_A", "mlp.0.lora_B"]


@points(1)
@pytest.mark.task("2.3")
def test_2_3_lora_state_dict_has_only_the_adapters(student):
    """lora_state_dict holds exactly the lora_A / lora_B entries, keyed as in state_dict()."""
    out = run_probe(student, tiny_model, "v_proj")
    assert out["lora_keys"] == ["attn.v_proj.lora_A", "attn.v_proj.lora_B"]


@points(1)
@pytest.mark.task("2.3")
def test_2_3_no_match_raises_value_error(student):
    """A target that matches no Linear ("proj") raises ValueError listing the Linear names."""
    with pytest.raises(ValueError, match="attn.xq_proj"):
        run_probe(student, tiny_model, ["proj"])


@points(1)
@pytest.mark.task("2.3")
def test_2_3_wrapped_layers_keep_the_pretrained_weights(student):
    """apply_lora wraps the existing Linears: every original weight is kept, bit for bit
    (attn.q_proj.weight becomes attn.q_proj.base.weight)."""
    out = run_probe(student, tiny_model, ["q_proj", "mlp.0"])
    after = out["weights_after"]
    for name, before in out["weights_before"].items():
        module, leaf = name.rsplit(".", 1)
        wrapped = f"{module}.base.{leaf}" if module in ("attn.q_proj", "mlp.0") else name
        assert wrapped in after, f"{wrapped} missing after apply_lora (found {sorted(after)})"
        assert_equal(after[wrapped], before, f"{wrapped} must equal the original {name}")


@points(1)
@pytest.mark.task("2.3")
def test_2_3_targets_may_be_a_generator(student):
    """target_modules may be any iterable of names, a generator too (read it once)."""
    out = run_probe(student, tiny_model_generator_targets, ["q_proj", "mlp.0"])
    wrapped = sorted(n for n, t in out["types"].items() if t == "LoRALinear")
    assert wrapped == ["attn.q_proj", "mlp.0"], f"wrapped {wrapped}"
