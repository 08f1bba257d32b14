"""What a correct mixture of experts computes, in float64, plus the inputs and probes
the moe hidden tests share.

The expectations here are written from SPEC §3.5, independently of the
reference: the tie rule is a plain Python sort on (-logit, index), the layer is
a loop over tokens. Probes (grader/kit/probes.py) build the student's objects in
the worker, load the weights the test drew, instrument the experts and return
plain data; expected values never enter a probe.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from grader.kit.checks import assert_close, assert_equal, assert_tensor
from grader.kit.probes import run_probe
from grader.kit.tolerance import tolerance
from tests.moe.tolerances import MOE_GRAD

F32 = tolerance(torch.float32)


# ------------------------------------------------------------ the gate, float64 --
def spec_indices(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The k largest logits of each row, descending, equal logits lower index first."""
    rows = logits.double().tolist()
    chosen = [sorted(range(len(row)), key=lambda e, row=row: (-row[e], e))[:k] for row in rows]
    return torch.tensor(chosen, dtype=torch.int64).reshape(len(rows), k)


def spec_gating(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights float64 [T, k], indices [T, k]): softmax over the k kept logits."""
    indices = spec_indices(logits, k)
    kept = logits.double().gather(1, indices)
    return torch.softmax(kept, dim=-1), indices


def spec_aux_loss(router_probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """E * sum_e f_e * P_e in float64, with f from counts over all k slots."""
    n_tokens, n_experts = router_probs.shape
    k = indices.shape[1]
    counts = torch.zeros(n_experts, dtype=torch.float64)
    for e in indices.flatten().tolist():
        counts[e] += 1
    f = counts / (k * n_tokens)
    p = router_probs.double().mean(dim=0)
    return n_experts * (f * p).sum()


# ---------------------------------------------------------- the layer, float64 --
def expert64(state: dict, e: int, x: torch.Tensor) -> torch.Tensor:
    """Expert e of a MoELayer state dict, in float64: w_out(silu(w_in(x)))."""
    def p(name):
        return state[f"experts.{e}.{name}"].double()
    return F.linear(F.silu(F.linear(x.double(), p("w_in.weight"), p("w_in.bias"))),
                    p("w_out.weight"), p("w_out.bias"))


def dense_moe(state: dict, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token by token, y_t = sum_j weights[t, j] * expert_{indices[t, j]}(x_t) (float64).

    Returns (y with x's shape, aux loss). Routing uses the float64 logits; the
    tests draw router weights and inputs on a dyadic grid, so they are exact in
    float32 too and every tie is a real tie.
    """
    d_model = x.shape[-1]
    tokens = x.reshape(-1, d_model).double()
    logits = tokens @ state["router.w_gate.weight"].double().T
    weights, indices = spec_gating(logits, k)
    rows = []
    for t in range(tokens.shape[0]):
        y_t = torch.zeros(d_model, dtype=torch.float64)
        for j in range(k):
            y_t = y_t + weights[t, j] * expert64(state, int(indices[t, j]), tokens[t:t + 1])[0]
        rows.append(y_t)
    y = torch.stack(rows).reshape(x.shape)
    return y, spec_aux_loss(torch.softmax(logits, dim=-1), indices)


# ----------------------------------------------------------------- comparisons --
def assert_grad_near(got, expected, message, **context) -> None:
    """A gradient: present (not None), right shape, close to the float64 one."""
    if got is None:
        raise AssertionError(f"{message}: no gradient reached it (grad is None)")
    # may vanish: with k = E, or a uniform expert load, the router's gradient is 0
    assert_close(got, expected, message, tol=MOE_GRAD, may_vanish=True, **context)


# ------------------------------------------------------------------ strategies --
GRID_X = (-1.0, -0.5, 0.0, 0.5, 1.0)
GRID_W = tuple(i / 4 for i in range(-4, 5))


def seeded(seed: int, *shape, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).float()


def grid(seed: int, values, *shape) -> torch.Tensor:
    """float32 values drawn from a small dyadic set: sums of products stay exact,
    and equal logits (ties) are common."""
    g = torch.Generator().manual_seed(seed)
    table = torch.tensor(values, dtype=torch.float32)
    return table[torch.randint(len(values), shape, generator=g)]


@st.composite
def logits_and_k(draw, dtypes=(torch.float32,), ties=None, max_tokens=6, max_experts=8):
    """(logits [T, E], k): small integers (ties on purpose) or spread floats."""
    n_tokens = draw(st.integers(1, max_tokens))
    n_experts = draw(st.integers(1, max_experts))
    k = draw(st.integers(1, n_experts))
    dtype = draw(st.sampled_from(dtypes))
    with_ties = draw(st.booleans()) if ties is None else ties
    if with_ties:
        values = draw(st.lists(st.integers(-2, 2), min_size=n_tokens * n_experts,
                               max_size=n_tokens * n_experts))
        logits = torch.tensor(values, dtype=torch.float64).reshape(n_tokens, n_experts)
    else:
        scale = draw(st.sampled_from([0.1, 1.0, 8.0]))
        logits = seeded(draw(st.integers(0, 2**31 - 1)), n_tokens, n_experts, scale=scale)
    return logits.to(dtype), k


@st.composite
def moe_cases(draw, max_tokens=12, ties=True):
    """A MoELayer configuration, its weights (a state dict) and an input x.

    x and the router are on the dyadic grid (ties=True) or random floats;
    experts are random. Leading shape of x: 1 to 3 dims, T <= max_tokens.
    """
    n_experts = draw(st.integers(1, 6))
    k = draw(st.integers(1, n_experts))
    d_model = draw(st.integers(2, 6))
    d_ff = draw(st.integers(2, 7).filter(lambda n: n != d_model))
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)
                      .filter(lambda s: math.prod(s) <= max_tokens)))
    seed = draw(st.integers(0, 2**31 - 1))
    if ties:
        x = grid(seed, GRID_X, *lead, d_model)
        w_gate = grid(seed + 1, GRID_W, n_experts, d_model)
    else:
        x = seeded(seed, *lead, d_model)
        w_gate = seeded(seed + 1, n_experts, d_model)
    state = {"router.w_gate.weight": w_gate}
    for e in range(n_experts):
        s = seed + 10 + 4 * e
        state[f"experts.{e}.w_in.weight"] = seeded(s, d_ff, d_model, scale=0.7)
        state[f"experts.{e}.w_in.bias"] = seeded(s + 1, d_ff, scale=0.3)
        state[f"experts.{e}.w_out.weight"] = seeded(s + 2, d_model, d_ff, scale=0.7)
        state[f"experts.{e}.w_out.bias"] = seeded(s + 3, d_model, scale=0.3)
    return {"sizes": [d_model, d_ff, n_experts, k], "state": state, "x": x}


# ------------------------------------------------ expectations shared by tests --
def noiseless(w_gate, x, k):
    """(weights, indices, aux) in float64 from logits = x @ w_gate.T."""
    logits = x.reshape(-1, x.shape[-1]).double() @ w_gate.double().T
    weights, indices = spec_gating(logits, k)
    return weights, indices, spec_aux_loss(torch.softmax(logits, dim=-1), indices)


def noisy_logits(w_gate, w_noise, x, seed):
    """SPEC §3.5's noisy logits: the noise drawn in float32 from a generator seeded `seed`."""
    tokens = x.reshape(-1, x.shape[-1])
    noise = torch.randn((tokens.shape[0], w_gate.shape[0]),
                        generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    tokens = tokens.double()
    return tokens @ w_gate.double().T + noise.double() * F.softplus(tokens @ w_noise.double().T)


def check_routing(out, expected, context):
    weights_ref, indices_ref, aux_ref = expected
    n_tokens, k = indices_ref.shape
    assert_tensor(out["weights"], dtype=torch.float32, shape=(n_tokens, k), what="weights")
    assert_equal(out["indices"], indices_ref, "indices", **context)
    assert_close(out["weights"], weights_ref, "weights", tol=F32, **context)
    assert_tensor(out["aux"], dtype=torch.float32, shape=(), what="aux_loss")
    assert_close(out["aux"], aux_ref, "aux_loss", tol=F32, **context)


def forward(student, case, backward=False, grad_out=None):
    return run_probe(student, run_moe_layer, case["sizes"], case["state"], case["x"],
                     backward, grad_out)


def routed_rows(case):
    """For each expert, the token rows routed to it (float64 logits, SPEC tie rule)."""
    d_model, _, n_experts, k = case["sizes"]
    tokens = case["x"].reshape(-1, d_model)
    logits = tokens.double() @ case["state"]["router.w_gate.weight"].double().T
    _, indices = spec_gating(logits, k)
    return [tokens[(indices == e).any(dim=1)] for e in range(n_experts)]


def sorted_rows(rows: torch.Tensor) -> list:
    return sorted(rows.tolist())


# ---------------------------------------------------------------------- probes --
def run_moe_layer(moe, sizes, state, x, backward, grad_out):
    """Build MoELayer(*sizes), load `state`, wrap every expert's forward to record
    the rows it is given, run forward (and backward of sum(y * grad_out) + aux)."""
    d_model, d_ff, n_experts, k = sizes
    layer = moe.MoELayer(d_model, d_ff, n_experts, k)
    layer.load_state_dict(state)
    layer.eval()
    calls = []

    def instrument(e, expert):
        inner = expert.forward

        def forward(*args, **kwargs):
            rows = args[0] if args else list(kwargs.values())[0]
            calls.append([e, rows.detach().clone()])
            return inner(*args, **kwargs)
        expert.forward = forward

    for e, expert in enumerate(layer.experts):
        instrument(e, expert)
    y, aux = layer(x)
    out = {"y": y, "aux": aux, "calls": calls}
    if backward:
        ((y * grad_out).sum() + aux).backward()
        out["grads"] = {name: p.grad for name, p in layer.named_parameters()}
    return out


def run_router(moe, sizes, w_gate, w_noise, x, train, seed, backward, grad_out):
    """Build TopKRouter(d_model, E, k, noisy=w_noise is not None), load the weights,
    route x in train or eval mode with a generator seeded `seed` (None: no
    generator); optionally backward of sum(weights * grad_out) + aux."""
    d_model, n_experts, k = sizes
    router = moe.TopKRouter(d_model, n_experts, k, noisy=w_noise is not None)
    with torch.no_grad():
        router.w_gate.weight.copy_(w_gate)
        if w_noise is not None:
            router.w_noise.weight.copy_(w_noise)
    router.train(train)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    weights, indices, aux = router(x, generator)
    out = {"weights": weights, "indices": indices, "aux": aux}
    if backward:
        ((weights * grad_out).sum() + aux).backward()
        out["grad_w_gate"] = router.w_gate.weight.grad
    return out
