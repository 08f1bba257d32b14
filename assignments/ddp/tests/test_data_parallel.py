"""Public tests for assignment 6 (ddp): small examples you can debug.

Run them with `grader test ddp` or `pytest assignments/ddp`. Distributed code
needs several processes, so these tests start one worker process per rank
(`ranks(2)` is a group of two) and run a *probe* -- a plain function below --
on every rank at once, with your ddp.py passed in as `ddp`. print() inside
your code shows up under a failing test ("--- rank 0: ..."). README.md §8
says what the hidden tests check.
"""

import pytest
import torch
import torch.distributed as dist
from torch import nn

from grader.kit.checks import assert_equal

points = pytest.mark.points


# ------------------------------------------------------------------ probes --
# Each runs on every rank; they may use only their arguments, torch, nn, F, math, dist.
def broadcast_a_linear(ddp):
    """Every rank builds a Linear with its own values, then broadcasts rank 0's."""
    rank = dist.get_rank()
    net = nn.Linear(3, 2)
    net.register_buffer("steps", torch.tensor([10.0 * rank]))
    with torch.no_grad():
        net.weight.fill_(rank + 1.0)
        net.bias.fill_(-rank - 1.0)
    ddp.broadcast_parameters(net)
    return {"weight": net.weight.detach(), "bias": net.bias.detach(), "steps": net.steps}


def scalar_model_gradient(ddp, method):
    """y = w * x with w = 2; rank r has the sample x = 1 + 2r, target 0; loss = y^2."""
    rank = dist.get_rank()
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0 if rank == 0 else 5.0)  # only rank 0's value may survive
    x = torch.tensor([[1.0 + 2 * rank]])
    if method == "ddp":
        model = ddp.DDP(net)
        (model(x) ** 2).mean().backward()
        model.finish_gradient_synchronization()
    else:
        ddp.broadcast_parameters(net)
        (net(x) ** 2).mean().backward()
        ddp.all_reduce_gradients(net)
    return net.weight.grad


def unused_layer(ddp, method):
    """Two layers; `unused` never takes part in the forward pass."""
    torch.manual_seed(0)
    net = nn.ModuleDict({"used": nn.Linear(2, 1), "unused": nn.Linear(2, 1)})
    x = torch.ones(1, 2)
    if method == "ddp":
        model = ddp.DDP(net)
        model.module["used"](x).sum().backward()
        model.finish_gradient_synchronization()
    else:
        ddp.broadcast_parameters(net)
        net["used"](x).sum().backward()
        ddp.all_reduce_gradients(net)
    return [None if p.grad is None else p.grad for p in net["unused"].parameters()]


def sgd_steps(ddp, initial, batches):
    """A few SGD steps of a small MLP: rank r starts from initial[r] and trains on batches[r]."""
    rank = dist.get_rank()
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    net.load_state_dict(initial[rank])
    model = ddp.DDP(net, bucket_size_mb=0.0001)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x in batches[rank]:
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        model.finish_gradient_synchronization()
        opt.step()
    return [p.detach() for p in net.parameters()]


def count_all_reduces(ddp):
    """Record every dist.all_reduce during one backward + finish (bucket_size_mb=0)."""
    events = []
    original = dist.all_reduce

    def watched(tensor, *args, **kwargs):
        events.append([tensor.numel(), bool(kwargs.get("async_op", False))])
        return original(tensor, *args, **kwargs)

    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model = ddp.DDP(net, bucket_size_mb=0.0)
    loss = model(torch.ones(1, 3)).sum()
    dist.all_reduce = watched
    try:
        loss.backward()
        model.finish_gradient_synchronization()
    finally:
        dist.all_reduce = original
    return events


# ------------------------------------------------- what one process computes --
def mlp_weights(seed):
    """The state of a freshly initialised nn.Sequential(Linear(4, 8), Tanh, Linear(8, 1))."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    return {name: value.clone() for name, value in net.state_dict().items()}


def sgd_on_one_process(initial, batches):
    """What every rank must end with: rank 0's initial weights, trained step by step on
    the batches of all ranks together (the mean of the ranks' losses)."""
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    net.load_state_dict(initial[0])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in zip(*batches, strict=True):
        opt.zero_grad()
        (sum((net(x) ** 2).mean() for x in step) / len(step)).backward()
        opt.step()
    return [p.detach() for p in net.parameters()]


# ---------------------------------------------------------------- Task 6.1 --
@points(1)
@pytest.mark.task("6.1")
def test_6_1_every_rank_gets_rank_0s_parameters_and_buffers(ranks):
    """After broadcast_parameters, both ranks hold rank 0's weight, bias and buffer."""
    for rank, got in enumerate(ranks(2).run(broadcast_a_linear)):
        assert_equal(got["weight"], torch.full((2, 3), 1.0), f"rank {rank}: weight")
        assert_equal(got["bias"], torch.full((2,), -1.0), f"rank {rank}: bias")
        assert_equal(got["steps"], torch.tensor([0.0]), f"rank {rank}: buffer `steps`")


# ---------------------------------------------------------------- Task 6.2 --
@points(2)
@pytest.mark.task("6.2")
def test_6_2_worked_example_gradient_is_the_mean_over_ranks(ranks):
    """w = 2, x = 1 on rank 0 and 3 on rank 1: grads 4 and 36 average to 20 on both ranks."""
    for rank, grad in enumerate(ranks(2).run(scalar_model_gradient, args=("naive",))):
        assert grad is not None and grad.tolist() == [[20.0]], f"rank {rank}: grad {grad}"


@points(1)
@pytest.mark.task("6.2")
def test_6_2_unused_parameter_gets_a_zero_gradient(ranks):
    """A parameter that got no gradient gets zeros (not None) after all_reduce_gradients."""
    for rank, grads in enumerate(ranks(2).run(unused_layer, args=("naive",))):
        assert all(g is not None and not g.any() for g in grads), f"rank {rank}: {grads}"


# ---------------------------------------------------------------- Task 6.3 --
@points(2)
@pytest.mark.task("6.3")
def test_6_3_ddp_worked_example(ranks):
    """DDP broadcasts w = 2 from rank 0, and both ranks end with the averaged gradient 20."""
    for rank, grad in enumerate(ranks(2).run(scalar_model_gradient, args=("ddp",))):
        assert grad is not None and grad.tolist() == [[20.0]], f"rank {rank}: grad {grad}"


@points(1)
@pytest.mark.task("6.3")
def test_6_3_unused_parameter_gets_a_zero_gradient(ranks):
    """A parameter unused in the step gets a zero gradient after finishing."""
    for rank, grads in enumerate(ranks(2).run(unused_layer, args=("ddp",))):
        assert all(g is not None and not g.any() for g in grads), f"rank {rank}: {grads}"


@points(2)
@pytest.mark.task("6.3")
def test_6_3_parameters_stay_identical_across_ranks(ranks):
    """Ranks start from different weights and see different data, yet stay identical:
    both hold what SGD on all the data in one process gives."""
    g = torch.Generator().manual_seed(0)
    initial = [mlp_weights(rank) for rank in range(2)]
    batches = [[torch.randn(5, 4, generator=g) for _ in range(3)] for _ in range(2)]
    first, second = ranks(2).run(sgd_steps, args=(initial, batches))
    for index, (a, b) in enumerate(zip(first, second, strict=True)):
        assert_equal(b, a, f"parameter {index}: rank 1's value (expected: rank 0's)")
    for got, expected in zip(first, sgd_on_one_process(initial, batches), strict=True):
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), \
            f"parameters after 3 steps: {got} differ from one process's SGD: {expected}"


@points(2)
@pytest.mark.task("6.3")
def test_6_3_one_async_all_reduce_per_bucket(ranks):
    """bucket_size_mb=0: one async all_reduce per parameter, in reverse registration order."""
    events = ranks(2).run(count_all_reduces)[0]
    # parameters in reverse order: bias [2], weight [2, 4], bias [4], weight [4, 3]
    assert [n for n, _ in events] == [2, 8, 4, 12], f"all_reduce calls (numel, async): {events}"
    assert all(is_async for _, is_async in events), f"not all async: {events}"
