"""Probes for the hidden LoRA properties (see grader/kit/probes.py for the rules).

Each probe builds the base nn.Linear (or a small nested model) from plain
tensors, drives the student's classes and returns plain data: outputs,
gradients, weights, flags. Expected values stay in the tests.
"""

import torch
from torch import nn

# A probe is re-created from its source beside torch, nn, F, math and dist; these
# imports only make the names visible to readers and linters.


def layer_report(lora, weight, bias, r, alpha, dropout):
    """A fresh layer: its adapters, scaling, flags and parameter names."""
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        if bias is not None:
            base.bias.copy_(bias)
    layer = lora.LoRALinear(base, r, alpha, dropout)
    scaling = layer.scaling
    return {
        "A": layer.lora_A, "B": layer.lora_B,
        "A_is_parameter": type(layer.lora_A) is nn.Parameter,
        "B_is_parameter": type(layer.lora_B) is nn.Parameter,
        "scaling": float(scaling) if isinstance(scaling, (int, float)) else str(type(scaling)),
        "merged": layer.merged is False,
        "base_is_given_linear": layer.base is base,
        "requires_grad": {n: p.requires_grad for n, p in layer.named_parameters()},
        "numel": {n: p.numel() for n, p in layer.named_parameters()},
    }


def forward(lora, weight, bias, A, B, x, r, alpha, dropout, mode, calls):
    """Outputs of `calls` forwards in mode "train" or "eval" (A, B None: keep the init)."""
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        if bias is not None:
            base.bias.copy_(bias)
    layer = lora.LoRALinear(base, r, alpha, dropout)
    with torch.no_grad():
        if A is not None:
            layer.lora_A.copy_(A)
        if B is not None:
            layer.lora_B.copy_(B)
    layer.train(mode == "train")
    x_before = x.clone()
    outputs = [layer(x) for _ in range(calls)]
    return {"y": outputs, "x_unchanged": bool(torch.equal(x, x_before)),
            "weight": layer.base.weight}


def delta_weight(lora, weight, bias, A, B, r, alpha):
    """layer.delta_weight() with the given adapters."""
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
    layer = lora.LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    return layer.delta_weight()


def gradients(lora, weight, bias, A, B, x, g, r, alpha):
    """Gradients of sum(layer(x) * g) for every parameter (None where there is none)."""
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        if bias is not None:
            base.bias.copy_(bias)
    layer = lora.LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    (layer(x) * g).sum().backward()
    return {
        "grad": {n: p.grad for n, p in layer.named_parameters()},
        "base_grad": {"weight": base.weight.grad, "bias": base.bias.grad if bias is not None
                      else None},
        "base_requires_grad": [p.requires_grad for p in base.parameters()],
    }


def merge_sequence(lora, weight, bias, A, B, x, r, alpha, ops):
    """Run ops ("merge", "unmerge", "forward") in order; record the state after each."""
    base = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        if bias is not None:
            base.bias.copy_(bias)
    layer = lora.LoRALinear(base, r, alpha)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    states = []
    for op in ops:
        y = None
        if op == "merge":
            layer.merge()
        elif op == "unmerge":
            layer.unmerge()
        else:
            with torch.no_grad():
                y = layer(x)
        states.append({"op": op, "y": y, "weight": layer.base.weight.detach().clone(),
                       "merged": layer.merged, "base_is_given_linear": layer.base is base,
                       "frozen": not any(p.requires_grad for p in layer.base.parameters())})
    return states


# ------------------------------------------------------------- whole models --
def build_model(spec, state):
    """Helper probe: the nested model described by `spec` (models.py), with `state`."""
    root = nn.ModuleDict()
    for name, what, shape in spec:
        *path, leaf = name.split(".")
        parent = root
        for part in path:
            if part not in parent:
                parent[part] = nn.ModuleDict()
            parent = parent[part]
        if what == "linear":
            parent[leaf] = nn.Linear(shape[0], shape[1], bias=bool(shape[2]))
        elif what == "layernorm":
            parent[leaf] = nn.LayerNorm(shape[0])
        elif what == "embedding":
            parent[leaf] = nn.Embedding(shape[0], shape[1])
        else:
            parent[leaf] = nn.GELU()
    root.load_state_dict(state)
    return root


def apply_report(lora, spec, state, targets, kind, r, alpha, dropout):
    """Build the nested model from `spec`, apply_lora(targets as `kind`), report on it."""
    model = build_model(spec, state)
    if kind == "str":
        chosen = targets[0]
    elif kind == "generator":
        chosen = (t for t in targets)
    else:
        chosen = {"list": list, "tuple": tuple, "set": set}[kind](targets)
    result = lora.apply_lora(model, chosen, r, alpha, dropout)
    adapters = {}
    for name, module in model.named_modules():
        if isinstance(module, lora.LoRALinear):
            adapters[name] = {"A": list(module.lora_A.shape), "B": list(module.lora_B.shape),
                              "scaling": float(module.scaling)}
    return {
        "returns_model": result is model,
        "types": {n: type(m).__name__ for n, m in model.named_modules() if n},
        "adapters": adapters,
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "state": dict(model.state_dict()),
    }


def state_dict_roundtrip(lora, spec, state, targets, r, adapters):
    """apply_lora, set adapters, lora_state_dict; load it into a fresh adapted model."""
    model = lora.apply_lora(build_model(spec, state), list(targets), r)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key in adapters:
                value.copy_(adapters[key])
    saved = lora.lora_state_dict(model)
    fresh = lora.apply_lora(build_model(spec, state), list(targets), r)
    loaded = fresh.load_state_dict(saved, strict=False)
    return {
        "saved": dict(saved),
        "full": dict(model.state_dict()),
        "unexpected": list(loaded.unexpected_keys),
        "fresh": dict(fresh.state_dict()),
    }


def merge_model(lora, spec, state, targets, r, alpha, adapters, inputs):
    """Outputs of each named Linear/LoRALinear for `inputs`: unmerged, merged (twice),
    unmerged again (twice); and the weights at each stage."""
    model = lora.apply_lora(build_model(spec, state), list(targets), r, alpha)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key in adapters:
                value.copy_(adapters[key])

    def outputs():
        with torch.no_grad():
            return {name: model.get_submodule(name)(x) for name, x in inputs.items()}

    stages = {"unmerged": outputs()}
    lora.merge_lora(model)
    lora.merge_lora(model)
    stages["merged"] = outputs()
    stages["merged_state"] = {k: v.clone() for k, v in model.state_dict().items()}
    lora.unmerge_lora(model)
    lora.unmerge_lora(model)
    stages["unmerged_again"] = outputs()
    stages["unmerged_state"] = {k: v.clone() for k, v in model.state_dict().items()}
    return stages


def train_regression(lora, w1, b1, w2, b2, x, y, r, alpha, steps, lr):
    """Sequential(Linear, Tanh, Linear) adapted on "0" and "2"; SGD on the parameters
    with requires_grad for `steps` steps of mean squared error. Losses and final state."""
    model = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0]), nn.Tanh(),
                          nn.Linear(w2.shape[1], w2.shape[0]))
    model.load_state_dict({"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
    lora.apply_lora(model, ["0", "2"], r, alpha)
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for _ in range(steps):  # plain SGD (torch.optim.SGD's first step imports for seconds)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in trainable:
                if p.grad is not None:
                    p -= lr * p.grad
                    p.grad = None
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(((model(x) - y) ** 2).mean().item())
    return {"losses": losses, "state": dict(model.state_dict())}
