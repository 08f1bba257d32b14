"""Trusted side of the ddp suite: the model, the data, and single-process expectations.

`Net` is the twin of the network defined inside tests/ddp/probes.py's
`train_on_rank`; expectations come from one process running the whole batch
(every rank's shard) in float64, with no torch.distributed at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from grader.kit.checks import assert_close

MB = 2**20


class Net(nn.Module):
    """fc1 -> (scale buffer, frozen bias) -> fc2 twice (tied) -> head (+ extra when used)."""

    def __init__(self, d_in, hidden, d_out, dtype=torch.float64, extra_dtype=None):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden, dtype=dtype)
        self.frozen = nn.Parameter(torch.zeros(hidden, dtype=dtype), requires_grad=False)
        self.fc2 = nn.Linear(hidden, hidden, dtype=dtype)
        self.head = nn.Linear(hidden, d_out, dtype=dtype)
        self.extra = nn.Linear(hidden, d_out, dtype=extra_dtype or dtype)
        self.register_buffer("scale", torch.ones(hidden, dtype=dtype))

    def forward(self, x, use_extra=True):
        h = torch.tanh(self.fc1(x) * self.scale + self.frozen)
        h = torch.tanh(self.fc2(h))
        h = torch.tanh(self.fc2(h))
        y = self.head(h)
        if use_extra:
            y = y + self.extra(h.to(self.extra.weight.dtype)).to(y.dtype)
        return y


@dataclass
class Problem:
    """One training problem: rank 0's starting state and every rank's shards."""

    state: dict                 # rank 0's parameters and buffers
    xs: list                    # per rank: [steps, batch, d_in]
    ys: list                    # per rank: [steps, batch, d_out]
    use_extra: list             # per rank: one bool per step

    @property
    def world_size(self) -> int:
        return len(self.xs)


def make_problem(seed: int, world_size: int, *, steps: int = 1, batch: int = 3,
                 dims=(3, 5, 2), dtype=torch.float64, extra_dtype=None,
                 use_extra=None) -> Problem:
    """Random weights (nonzero frozen bias and scale buffer) and shards, from `seed`."""
    g = torch.Generator().manual_seed(seed)
    d_in, hidden, d_out = dims
    net = Net(d_in, hidden, d_out, dtype, extra_dtype)
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            tensor.copy_(torch.randn(tensor.shape, generator=g, dtype=torch.float64) * 0.7)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    xs = [torch.randn(steps, batch, d_in, generator=g, dtype=torch.float64).to(dtype)
          for _ in range(world_size)]
    ys = [torch.randn(steps, batch, d_out, generator=g, dtype=torch.float64).to(dtype)
          for _ in range(world_size)]
    if use_extra is None:
        use_extra = [[True] * steps for _ in range(world_size)]
    return Problem(state, xs, ys, use_extra)


def rank_states(problem: Problem, seed: int) -> list[dict]:
    """What each rank starts from: rank 0 the problem's state, the others different
    random values (as if every rank had seeded its own initialisation)."""
    g = torch.Generator().manual_seed(seed + 99)
    states = [problem.state]
    for _ in range(1, problem.world_size):
        states.append({k: v + torch.randn(v.shape, generator=g, dtype=torch.float64).to(v.dtype)
                       for k, v in problem.state.items()})
    return states


def single_process_run(problem: Problem, steps: int, optimizer: str = "sgd", lr: float = 0.1):
    """One process, whole batch, float64: (grads per step, final state).

    Loss of a step = mean over ranks of each shard's mean squared error; with equal
    shards this is the mean loss of the concatenated batch. Parameters that got no
    gradient count as zeros (as DDP materialises them), so Adam sees the same thing.
    """
    net = _net_like(problem.state)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(trainable, lr=lr)
    names = [n for n, _ in net.named_parameters()]
    grads = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        flags = [problem.use_extra[r][step] for r in range(problem.world_size)]
        if all(f == flags[0] for f in flags):  # literally the concatenated batch
            x = torch.cat([x[step] for x in problem.xs]).double()
            y = torch.cat([y[step] for y in problem.ys]).double()
            loss = ((net(x, flags[0]) - y) ** 2).mean()
        else:
            loss = sum(((net(problem.xs[r][step].double(), flags[r])
                         - problem.ys[r][step].double()) ** 2).mean()
                       for r in range(problem.world_size)) / problem.world_size
        loss.backward()
        for p in trainable:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads.append({n: (p.grad.clone() if p.grad is not None else None)
                      for n, p in zip(names, net.parameters(), strict=True)})
        opt.step()
    return grads, {k: v.detach().clone() for k, v in net.state_dict().items()}


def _net_like(state: dict) -> Net:
    w1 = state["fc1.weight"]
    net = Net(w1.shape[1], w1.shape[0], state["head.weight"].shape[0], torch.float64)
    net.load_state_dict({k: v.double() for k, v in state.items()})
    return net


def parameter_table(state: dict) -> list[tuple[str, int, int, torch.dtype]]:
    """(name, numel, bytes, dtype) of Net's parameters in registration order, from a state."""
    names = [n for n, _ in _net_like(state).named_parameters()]
    return [(n, state[n].numel(), state[n].numel() * state[n].element_size(), state[n].dtype)
            for n in names]


FROZEN = {"frozen"}


def expected_buckets(state: dict, bucket_size_mb: float) -> list[list[str]]:
    """SPEC §3.6's buckets: reverse registration order, greedy, new bucket past the limit
    or on a dtype change; parameter names per bucket."""
    capacity = bucket_size_mb * MB
    buckets, size, dtype = [], 0, None
    for name, _numel, nbytes, dt in reversed(parameter_table(state)):
        if name in FROZEN:
            continue
        if not buckets or size + nbytes > capacity or dt != dtype:
            buckets.append([name])
            size, dtype = nbytes, dt
        else:
            buckets[-1].append(name)
            size += nbytes
    return buckets


def assert_grads_match(got: dict, expected: dict, what: str) -> None:
    """Every trainable gradient close to the float64 expectation; frozen ones stay None."""
    for name, exp in expected.items():
        g = got[name]
        if name in FROZEN:
            assert g is None, f"{what}: the frozen parameter {name!r} got a gradient"
            continue
        assert g is not None, f"{what}: {name}.grad is None (an unused parameter's " \
                              "gradient must be materialised as zeros)"
        assert_close(g, exp.to(g.dtype), f"{what}: gradient of {name}")
