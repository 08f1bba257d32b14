"""Peer check (0 points): the course's reference routes like Hugging Face's Mixtral.

Given the same router weights, the reference's `top_k_gating` selects the same
experts with the same weights as transformers' `MixtralSparseMoeBlock`, and the
block's output is the reference's combination of Mixtral's own experts. This
checks the reference (trusted, in this process), not a submission: it is worth
0 points, skipped when a submission is graded, and skipped when transformers
(an optional dev dependency) is not installed, so it never changes a grade.

Read from transformers 5.x's source (models/mixtral/modeling_mixtral.py):
`block.gate` is a `MixtralTopKRouter` with `weight [E, d_model]`, returning
(router_logits, top_k_weights, top_k_index) (softmax over all experts, torch.topk,
renormalise); `block.experts` holds `gate_up_proj [E, 2*d_ff, d_model]` and
`down_proj [E, d_model, d_ff]`, expert(x) = down(silu(gate(x)) * up(x)); the block
returns only the hidden states. transformers 4.x had `gate = nn.Linear` (same
`weight`), a ModuleList of experts with w1 (gate), w3 (up), w2 (down), and returned
(hidden_states, router_logits): both layouts are handled below.
Random router weights make ties impossible, so torch.topk's tie order (unspecified)
does not matter here.
"""


import pytest
import torch
import torch.nn.functional as F

from grader.kit.checks import assert_close, assert_equal
from tests.moe.expect import F32

pytestmark = pytest.mark.task("5.1")
points = pytest.mark.points


@pytest.fixture
def mixtral(request):
    """transformers' Mixtral modelling module, or a skip with the reason."""
    session = request.config.llmlab
    if not session.use_reference:
        pytest.skip("peer check of the course's reference (0 points): not run on a submission")
    return pytest.importorskip("transformers.models.mixtral.modeling_mixtral",
                               reason="transformers is not installed (optional dev dependency)")


def make_block(mixtral, d_model, d_ff, n_experts, k, seed):
    config = mixtral.MixtralConfig(hidden_size=d_model, intermediate_size=d_ff,
                                   num_local_experts=n_experts, num_experts_per_tok=k,
                                   router_jitter_noise=0.0, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1)
    block = mixtral.MixtralSparseMoeBlock(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in block.parameters():  # 5.x leaves expert weights uninitialised
            parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.5)
    return block


def expert_weights(block, e):
    """(gate [d_ff, d], up [d_ff, d], down [d, d_ff]) of Mixtral's expert e, any version."""
    experts = block.experts
    if hasattr(experts, "gate_up_proj"):                      # transformers 5.x
        gate, up = experts.gate_up_proj[e].chunk(2, dim=0)
        return gate, up, experts.down_proj[e]
    mlp = experts[e]                                          # transformers 4.x
    return mlp.w1.weight, mlp.w3.weight, mlp.w2.weight


def block_output(block, x):
    out = block(x)
    return out[0] if isinstance(out, tuple) else out


@points(0)
@pytest.mark.parametrize("n_experts, k", [(8, 2), (4, 1), (6, 3)])
def test_reference_routes_like_mixtral(mixtral, reference, n_experts, k):
    """The reference selects Mixtral's experts with Mixtral's weights, given its router.

    And Mixtral's block output is the reference routing applied to Mixtral's experts."""
    d_model, d_ff, n_tokens = 8, 12, 10
    block = make_block(mixtral, d_model, d_ff, n_experts, k, seed=n_experts * 10 + k)
    x = torch.randn(1, n_tokens, d_model, generator=torch.Generator().manual_seed(k))
    tokens = x.reshape(n_tokens, d_model)
    with torch.no_grad():
        logits = F.linear(tokens, block.gate.weight)
        weights, indices = reference.top_k_gating(logits, k)

        if not isinstance(block.gate, torch.nn.Linear):     # 5.x: the router routes itself
            _, hf_weights, hf_indices = block.gate(tokens)
            assert_equal(indices, hf_indices.to(torch.int64), "indices vs Mixtral's router")
            assert_close(weights, hf_weights.double(), "weights vs Mixtral's router", tol=F32)

        expected = torch.zeros(n_tokens, d_model, dtype=torch.float64)
        for t in range(n_tokens):
            for j in range(k):
                gate, up, down = (w.double() for w in expert_weights(block, int(indices[t, j])))
                x_t = tokens[t].double()
                expected[t] += weights[t, j].double() * (down @ (F.silu(gate @ x_t) * (up @ x_t)))
        got = block_output(block, x.clone()).reshape(n_tokens, d_model)
    assert_close(got, expected, "Mixtral's block output vs the reference's routing", tol=F32)


@points(0)
@pytest.mark.parametrize("n_experts, k", [(8, 2), (5, 3)])
def test_reference_aux_loss_is_mixtrals_divided_by_k(mixtral, reference, n_experts, k):
    """transformers' load_balancing_loss_func is k times the reference's aux loss.

    It counts tokens per expert over T, not k*T (SPEC's loss is 1 at balance for any k)."""
    logits = torch.randn(12, n_experts, generator=torch.Generator().manual_seed(n_experts))
    _, indices = reference.top_k_gating(logits, k)
    ours = reference.load_balancing_loss(torch.softmax(logits, dim=-1), indices)
    theirs = mixtral.load_balancing_loss_func((logits,), n_experts, k)
    assert_close(ours, theirs.double() / k, "reference aux loss vs Mixtral's / k", tol=F32)
