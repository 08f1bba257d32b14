"""Ties go to the higher expert index (stable sort of the reversed row).
Caught by: test_5_3_noisy_router_example_eval_then_training (+9 more)
Classic: yes
Failing hidden tests (CPU, grading profile): test_5_3_noisy_router_example_eval_then_training, test_5_4_layer_example_output_and_dispatch, test_worked_example_from_the_handout, test_indices_and_weights_match_the_specification, test_ties_go_to_the_lower_expert_index, test_routing_and_aux_loss_match_the_specification, test_noisy_router_adds_no_noise_in_eval_mode, test_router_without_noise_adds_none_in_training, test_output_equals_the_dense_per_token_reference, test_each_expert_runs_at_most_once_on_exactly_its_tokens.

---- the reference's docstring, unchanged: ----
Assignment 5: a sparsely gated mixture of experts (top-k gate and layer).

You implement (see README.md beside this file):

    Task 5.1  top_k_gating         logits [T, E] -> (weights [T, k], indices [T, k])
    Task 5.2  load_balancing_loss  the auxiliary loss that keeps experts equally busy
    Task 5.3  TopKRouter           x -> logits (+ noise in training) -> top-k gate, aux loss
    Task 5.4  MoELayer             dispatch tokens to their experts, combine the outputs

`Expert` (Linear -> SiLU -> Linear) is provided in experts.py beside this file.

Run the public tests with `grader test moe` (or plain `pytest assignments/moe`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from experts import Expert
from torch import Tensor, nn

__all__ = ["Expert", "MoELayer", "TopKRouter", "load_balancing_loss", "top_k_gating"]


def _check_k(k, n_experts: int) -> None:
    """Raise unless k is an int with 1 <= k <= n_experts."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= n_experts:
        raise ValueError(f"k={k} must satisfy 1 <= k <= n_experts={n_experts}")


def _check_size(value, name: str) -> None:
    """Raise unless value is a positive int (a layer dimension)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name}={value} must be at least 1")


def top_k_gating(logits: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The sparse gate G(x) = softmax(keep_top_k(logits, k)), stored densely as k pairs.

        keep_top_k(h, k)_e = h_e  if e is among the k largest entries of h, else -inf
        G_e = exp(keep_top_k(h)_e) / sum_e' exp(keep_top_k(h)_e')

    Only the k selected experts get a nonzero gate (exp(-inf) = 0), so the
    result is returned as the k (weight, expert index) pairs of each row:

        indices[t, j]  the j-th largest logit of row t (descending; equal logits
                       in order of increasing expert index: lower index first)
        weights[t, j]  softmax over the k selected logits of row t, in float32

    Args:
        logits: floating tensor [T, E] (T tokens, E experts), finite.
        k:      number of experts per token, 1 <= k <= E.
    Returns:
        (weights, indices): weights float32 [T, k], each row >= 0 summing to 1;
        indices int64 [T, k]. Differentiable with respect to `logits`.
    Raises:
        ValueError: k out of range; logits not 2-D, empty in E, or non-finite.
        TypeError:  logits not a floating tensor, k not an int.

    Example: logits [[1., 3., 3., 0.]], k=2 -> indices [[1, 2]] (the tie 3 = 3
    goes to the lower index first), weights [[0.5, 0.5]].
    """
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating torch.Tensor, got {logits!r:.80}")
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape [T, E] with E >= 1, got {list(logits.shape)}")
    _check_k(k, logits.shape[1])
    if not torch.isfinite(logits).all():
        raise ValueError("logits has nan or inf values")

    # A stable descending sort keeps equal logits in index order, so ties go to
    # the lower expert index. torch.topk promises no order among equal values.
    n_experts = logits.shape[1]
    top_logits, indices = torch.sort(logits.flip(-1), dim=-1, descending=True, stable=True)
    top_logits, indices = top_logits[:, :k], n_experts - 1 - indices[:, :k]
    # softmax over the kept logits = softmax over keep_top_k(logits): the -inf
    # entries contribute exp(-inf) = 0 to the denominator.
    weights = torch.softmax(top_logits.to(torch.float32), dim=-1)
    return weights, indices


def load_balancing_loss(router_probs: Tensor, indices: Tensor) -> Tensor:
    """The auxiliary loss that pushes the router to use all experts equally.

        f_e  = (number of (token, slot) pairs routed to e) / (k * T)   fraction of the work
        P_e  = (1/T) * sum_t router_probs[t, e]                        mean router probability
        loss = E * sum_e f_e * P_e

    f is a count (no gradient); the gradient flows through P to the router.
    Perfectly uniform routing (f_e = P_e = 1/E) gives exactly 1 for any k.

    Args:
        router_probs: floating tensor [T, E], softmax of the router logits over
                      all E experts (each row sums to 1).
        indices:      integer tensor [T, k], the experts each token was sent to,
                      values in [0, E).
    Returns:
        0-d tensor with router_probs' dtype, differentiable w.r.t. router_probs.
    Raises:
        ValueError: shapes not [T, E] and [T, k] with the same T >= 1 and k >= 1;
                    an index outside [0, E).
        TypeError:  router_probs not floating, indices not an integer tensor.

    Example: E=2, k=1, indices [[0], [0]], router_probs [[0.75, 0.25], [0.25, 0.75]]
    -> f = [1, 0], P = [0.5, 0.5], loss = 2 * 0.5 = 1.
    """
    if not isinstance(router_probs, Tensor) or not router_probs.is_floating_point():
        raise TypeError("router_probs must be a floating torch.Tensor")
    if not isinstance(indices, Tensor) or indices.is_floating_point() or indices.is_complex() \
            or indices.dtype == torch.bool:
        raise TypeError("indices must be an integer torch.Tensor")
    if router_probs.dim() != 2 or min(router_probs.shape) == 0:
        raise ValueError(f"router_probs must have shape [T, E] with T, E >= 1, "
                         f"got {list(router_probs.shape)}")
    n_tokens, n_experts = router_probs.shape
    if indices.dim() != 2 or indices.shape[0] != n_tokens or indices.shape[1] == 0:
        raise ValueError(f"indices must have shape [T={n_tokens}, k] with k >= 1, "
                         f"got {list(indices.shape)}")
    if ((indices < 0) | (indices >= n_experts)).any():
        raise ValueError(f"indices must lie in [0, {n_experts})")

    k = indices.shape[1]
    counts = torch.bincount(indices.flatten(), minlength=n_experts)
    f = counts.to(router_probs.dtype) / (k * n_tokens)
    p = router_probs.mean(dim=0)
    return n_experts * (f * p).sum()


class TopKRouter(nn.Module):
    """Task 5.3: chooses k experts per token (linear gate, optional noise, top-k, aux loss).

        logits = w_gate(x)                                       [T, E]
        training and noisy:  logits += randn(T, E) * softplus(w_noise(x))
        weights, indices = top_k_gating(logits, k)
        aux_loss = load_balancing_loss(softmax(logits, -1), indices)

    The noise (noisy top-k gating, Shazeer et al. 2017) is drawn with
    `torch.randn(logits.shape, generator=generator, dtype=logits.dtype,
    device=logits.device)`, only when `noisy` and `self.training`; the same
    generator state gives the same noise. The aux loss uses the routed (noisy,
    when noise applies) logits.

    Attributes:
        w_gate:  nn.Linear(d_model, n_experts, bias=False).
        w_noise: nn.Linear(d_model, n_experts, bias=False) when noisy, else None.
        k, n_experts, noisy: the constructor's arguments.
    Raises (constructor):
        ValueError: d_model or n_experts < 1, or k outside [1, n_experts].
        TypeError:  a non-int size or k.
    """

    def __init__(self, d_model: int, n_experts: int, k: int, *, noisy: bool = False):
        super().__init__()
        _check_size(d_model, "d_model")
        _check_size(n_experts, "n_experts")
        _check_k(k, n_experts)
        self.d_model, self.n_experts, self.k, self.noisy = d_model, n_experts, k, bool(noisy)
        self.w_gate = nn.Linear(d_model, n_experts, bias=False)
        self.w_noise = nn.Linear(d_model, n_experts, bias=False) if noisy else None

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Route the tokens of x.

        Args:
            x:         floating tensor [..., d_model]; leading dims are flattened
                       to T tokens (row-major, as x.reshape(-1, d_model)).
            generator: torch.Generator for the noise (None: torch's global one).
        Returns:
            (weights float32 [T, k], indices int64 [T, k], aux_loss 0-d float32).
        Raises:
            ValueError: x's last dim is not d_model.
        """
        if x.dim() == 0 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [..., d_model={self.d_model}], "
                             f"got {list(x.shape)}")
        x = x.reshape(-1, self.d_model)
        logits = self.w_gate(x)
        if self.noisy and self.training:
            noise = torch.randn(logits.shape, generator=generator, dtype=logits.dtype,
                                device=logits.device)
            logits = logits + noise * F.softplus(self.w_noise(x))
        weights, indices = top_k_gating(logits, self.k)
        probs = torch.softmax(logits.to(torch.float32), dim=-1)
        return weights, indices, load_balancing_loss(probs, indices)


class MoELayer(nn.Module):
    """Task 5.4: a sparse mixture-of-experts feed-forward layer.

        weights, indices, aux_loss = router(x)
        y_t = sum_j weights[t, j] * experts[indices[t, j]](x_t)

    Computed by dispatch and combine, not token by token: group the T*k
    (token, slot) pairs by expert, run each expert once on exactly the rows
    routed to it, scale each output row by its gate weight and add it back to
    its token. Experts never see the tokens they were not chosen for, so the
    experts' total rows are T*k, not T*E.

    Attributes:
        router:  TopKRouter(d_model, n_experts, k, noisy=noisy).
        experts: nn.ModuleList of n_experts Expert(d_model, d_ff).
    Raises (constructor):
        ValueError: a size < 1, or k outside [1, n_experts].
        TypeError:  a non-int size or k.
    """

    def __init__(self, d_model: int, d_ff: int, n_experts: int, k: int, *,
                 noisy: bool = False):
        super().__init__()
        _check_size(d_ff, "d_ff")
        self.router = TopKRouter(d_model, n_experts, k, noisy=noisy)
        self.experts = nn.ModuleList(Expert(d_model, d_ff) for _ in range(n_experts))
        self.d_model = d_model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """y = sum over each token's k experts of gate weight * expert output.

        Args:
            x: floating tensor [..., d_model], any leading shape (T tokens in all).
        Returns:
            (y, aux_loss): y with x's shape and dtype; aux_loss 0-d float32, the
            router's load-balancing loss.
        Raises:
            ValueError: x's last dim is not d_model.
        """
        weights, indices, aux_loss = self.router(x)   # checks x's shape
        tokens = x.reshape(-1, self.d_model)          # [T, d_model]
        k = indices.shape[1]

        # Dispatch: sort the T*k (token, slot) pairs by expert. A stable sort
        # keeps each expert's tokens in token order; pair p belongs to token p // k.
        expert_of_pair = indices.flatten()                              # [T*k]
        order = torch.argsort(expert_of_pair, stable=True)
        token_of_pair = order // k
        rows_per_expert = torch.bincount(expert_of_pair, minlength=len(self.experts)).tolist()

        # One call per expert, on exactly its rows (experts with no rows are skipped).
        chunks = tokens[token_of_pair].split(rows_per_expert)
        outputs = [expert(rows) for expert, rows in zip(self.experts, chunks, strict=True)
                   if rows.shape[0] > 0]
        out = torch.cat(outputs) if outputs else tokens.new_zeros(0, self.d_model)

        # Combine: weight each row by its gate and add it to its token.
        gate = weights.flatten()[order].to(out.dtype)
        y = torch.zeros_like(tokens).index_add(0, token_of_pair, out * gate[:, None])
        return y.reshape(x.shape), aux_loss
