"""The small nested model of the apply_lora properties, described as data.

Probes build it (a tree of nn.ModuleDict) from MODEL and load STATE, so the
trusted test knows every weight. Names mimic a transformer, with traps for
substring matching: `xq_proj` ends with "q_proj" but not with ".q_proj",
`q_proj_gate` starts with it, `norm` and `attn` are not Linears.
"""

from __future__ import annotations

import torch

from tests.lora.cases import dyadic

# (dotted name, kind, shape): linear (in, out, bias), layernorm (n,), embedding (n, d), gelu ()
MODEL = [("embed", "embedding", (10, 6))]
for _i in range(2):
    MODEL += [
        (f"layers.{_i}.norm", "layernorm", (6,)),
        (f"layers.{_i}.attn.q_proj", "linear", (6, 5, 1)),
        (f"layers.{_i}.attn.k_proj", "linear", (6, 4, 0)),
        (f"layers.{_i}.attn.v_proj", "linear", (6, 4, 1)),
        (f"layers.{_i}.attn.xq_proj", "linear", (6, 3, 1)),
        (f"layers.{_i}.attn.o_proj", "linear", (5, 6, 1)),
        (f"layers.{_i}.mlp.0", "linear", (6, 7, 1)),
        (f"layers.{_i}.mlp.1", "gelu", ()),
        (f"layers.{_i}.mlp.2", "linear", (7, 6, 1)),
    ]
MODEL += [("q_proj_gate", "linear", (6, 2, 1)), ("lm_head", "linear", (6, 10, 0))]

LINEARS = {name: shape for name, kind, shape in MODEL if kind == "linear"}

# Targets to draw from: Linear names and suffixes, and names that match no Linear.
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "attn.q_proj", "0.attn.v_proj", "mlp.0",
           "mlp.2", "lm_head", "q_proj_gate", "proj", "q", "attn", "norm", "embed", "xq",
           "layers.1.attn.o_proj")


def model_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter of MODEL, dyadic values (the probes load it with strict=True)."""
    state = {}
    for i, (name, kind, shape) in enumerate(MODEL):
        s = 10 * (seed + i)
        if kind == "linear":
            state[f"{name}.weight"] = dyadic((shape[1], shape[0]), s)
            if shape[2]:
                state[f"{name}.bias"] = dyadic((shape[1],), s + 1)
        elif kind == "layernorm":
            state[f"{name}.weight"] = dyadic((shape[0],), s)
            state[f"{name}.bias"] = dyadic((shape[0],), s + 1)
        elif kind == "embedding":
            state[f"{name}.weight"] = dyadic(shape, s)
    return state


def matched(targets) -> list[str]:
    """The Linear names SPEC §3.2 says apply_lora wraps: equal to t or ending in "." + t."""
    return [name for name in LINEARS
            if any(name == t or name.endswith("." + t) for t in targets)]


def adapters_for(names, r: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Nonzero lora_A / lora_B values for the wrapped Linears, keyed as in state_dict()."""
    values = {}
    for i, name in enumerate(names):
        d_in, d_out, _ = LINEARS[name]
        values[f"{name}.lora_A"] = dyadic((r, d_in), 100 * seed + 2 * i)
        values[f"{name}.lora_B"] = dyadic((d_out, r), 100 * seed + 2 * i + 1, nonzero=True)
    return values
