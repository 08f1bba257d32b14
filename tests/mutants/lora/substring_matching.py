"""apply_lora matches targets as substrings (t in name).
Caught by: test_a_name_that_only_contains_a_target_is_not_matched (+6 more)
Classic: yes

"q_proj" also wraps "xq_proj" and "q_proj_gate"; "proj" wraps every projection.
Failing hidden tests (CPU, grading profile): test_a_name_that_only_contains_a_target_is_not_matched,
test_exactly_the_linears_matching_a_target_are_wrapped, test_a_bare_string_is_one_target,
test_no_match_raises_value_error_listing_the_linear_names,
test_every_original_weight_is_kept_unchanged, test_every_non_lora_parameter_is_frozen,
test_lora_state_dict_holds_exactly_the_lora_entries.

---- the reference's docstring, unchanged: ----

Assignment 2: LoRA, low-rank adapters on a frozen linear layer.

You implement one class and four functions (see README.md beside this file):

    Task 2.1  LoRALinear.__init__, forward, delta_weight
              y = base(x) + (alpha / r) * dropout(x) @ A.T @ B.T, base frozen, B = 0 at init
    Task 2.2  LoRALinear.merge, unmerge
              fold (alpha / r) * B @ A into the base weight and take it out again
    Task 2.3  apply_lora, lora_state_dict, merge_lora, unmerge_lora
              wrap a model's target Linears, save only the adapters, merge them all

Run the public tests with `grader test lora` (or plain `pytest assignments/lora`).
Everything runs on a CPU; no Triton in this assignment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

LORA_PARAMETERS = ("lora_A", "lora_B")  # the only trainable parameters after apply_lora


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update (Hu et al., 2021).

        y = base(x) + scaling * dropout(x) @ A.T @ B.T,      scaling = alpha / r

    Shapes, for base = nn.Linear(d_in, d_out):
        x       [..., d_in]       any number of leading (batch) dims
        W       [d_out, d_in]     base.weight, frozen (requires_grad False), bias too
        lora_A  [r, d_in]         kaiming_uniform_(a=sqrt(5)), like nn.Linear's weight
        lora_B  [d_out, r]        zeros: a fresh layer returns exactly base(x)
        y       [..., d_out]

    lora_A and lora_B have the base weight's dtype and device. Dropout (an
    nn.Dropout with probability `dropout`) applies to the LoRA branch's input
    only, so it follows train()/eval() and never touches the base path.
    `merged` is True while the update is folded into base.weight (then
    forward is base(x) alone).

    Raises:
        TypeError:  base not an nn.Linear; r not an int; alpha or dropout not a number.
        ValueError: r < 1; alpha <= 0 or not finite; dropout outside [0, 1).

    Example (README.md §2): W = [[1, 0, 2], [0, 1, -1]], b = [0.5, -0.5], r = 1,
    alpha = 2, A = [[1, 1, 0]], B = [[1], [-1]], x = [1, 2, 3]:
    base(x) = [7.5, -1.5], x @ A.T = [3], y = [7.5, -1.5] + 2 * [3, -3] = [13.5, -7.5].
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = 1.0, dropout: float = 0.0):
        """Wrap `base` (kept as self.base, not copied), freeze it, create the adapters.

        Args:
            base:    the pretrained nn.Linear(d_in, d_out), with or without bias.
            r:       rank of the update, an int >= 1.
            alpha:   the update is scaled by scaling = alpha / r; alpha > 0.
            dropout: probability in [0, 1) of dropping an input of the LoRA branch.
        Sets base, lora_A, lora_B, scaling, merged = False and a dropout submodule
        (call super().__init__() first, as in every nn.Module).
        """
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"r must be an int >= 1, got {type(r).__name__} {r!r}")
        if r < 1:
            raise ValueError(f"r must be an int >= 1, got {r}")
        for name, value in (("alpha", alpha), ("dropout", dropout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
        if not 0 <= dropout < 1:  # also False for nan
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.base = base
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        self.merged = False
        for parameter in base.parameters():  # weight, and bias if there is one
            parameter.requires_grad_(False)

        weight = base.weight
        like = dict(dtype=weight.dtype, device=weight.device)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))
        # A random, B zero: the product B @ A starts at 0 (training starts from the
        # base model) while dL/dB = scaling * grad(y).T @ (x @ A.T) is not 0.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """base(x) + scaling * dropout(x) @ lora_A.T @ lora_B.T; base(x) alone when merged.

        x [..., d_in] -> [..., d_out]. The product goes through the rank-r
        bottleneck (x @ A.T is [..., r]); B @ A ([d_out, d_in]) is never formed.
        """
        result = self.base(x)
        if self.merged:
            return result
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T
        return result + self.scaling * update

    def delta_weight(self) -> Tensor:
        """The update as a weight matrix: scaling * lora_B @ lora_A, [d_out, d_in].

        base(x) + x @ delta_weight().T equals forward(x) without dropout.
        """
        return self.scaling * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def merge(self) -> None:
        """W += delta_weight(), in place, in W's dtype; then merged is True.

        Idempotent: merging a merged layer changes nothing. Afterwards forward
        costs exactly one matmul, as the base layer alone did.
        """
        if self.merged:
            return
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W -= delta_weight(), in place; then merged is False. Idempotent.

        In fp16/bf16, (W + delta) - delta is W up to rounding, not bit for bit.
        """
        if not self.merged:
            return
        self.base.weight -= self.delta_weight()
        self.merged = False


def apply_lora(model: nn.Module, target_modules: Iterable[str], r: int,
               alpha: float = 1.0, dropout: float = 0.0) -> nn.Module:
    """Wrap the target nn.Linear layers of `model` in LoRALinear, in place; freeze the rest.

    A Linear is a target when its dotted name (as in model.named_modules())
    equals some t in target_modules or ends with "." + t: "q_proj" matches
    "layers.0.attn.q_proj" but not "layers.0.attn.xq_proj"; "attn.q_proj" and
    "mlp.0" (a Sequential's first layer) work too. A bare str is one target.
    `target_modules` may be any iterable (read it once). Afterwards every
    parameter except lora_A / lora_B has requires_grad False.

    Returns:
        model itself.
    Raises:
        ValueError: no Linear matches; the message lists the model's Linear names.
        (and LoRALinear's errors for bad r, alpha, dropout)
    """
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    linears = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear)]
    chosen = [(name, module) for name, module in linears
              if any(t in name for t in targets)]
    if not chosen:
        names = ", ".join(name for name, _ in linears) or "(none)"
        raise ValueError(f"target_modules {targets} match no nn.Linear of the model; "
                         f"its Linear layers are: {names}")
    # Collect first, then replace: the model's module tree is not changed while we walk it.
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(linear, r, alpha, dropout))
    for name, parameter in model.named_parameters():
        if name.rpartition(".")[2] not in LORA_PARAMETERS:
            parameter.requires_grad_(False)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapters: the lora_A / lora_B entries of model.state_dict(), same keys.

    A checkpoint of r * (d_in + d_out) numbers per layer instead of the whole
    model; load it with model.load_state_dict(sd, strict=False) into a model
    prepared by apply_lora with the same targets and r.
    """
    return {key: value for key, value in model.state_dict().items()
            if key.rpartition(".")[2] in LORA_PARAMETERS}


def merge_lora(model: nn.Module) -> None:
    """merge() every LoRALinear in the model (idempotent, like merge)."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.merge()


def unmerge_lora(model: nn.Module) -> None:
    """unmerge() every LoRALinear in the model (idempotent, like unmerge)."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.unmerge()
