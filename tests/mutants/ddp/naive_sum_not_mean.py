"""all_reduce_gradients sums the gradients over ranks but never divides by the world size.
Caught by: test_gradients_are_the_mean_over_ranks
Classic: yes

Every rank ends with N times the full-batch gradient; identical across ranks, so only a comparison with one process catches it.

---- the reference's docstring, unchanged: ----
Assignment 6: data-parallel training, naive and bucketed with overlap.

You implement (see README.md beside this file):

    Task 6.1  broadcast_parameters   every rank starts from rank src's weights and buffers
    Task 6.2  all_reduce_gradients   the naive version: one blocking all-reduce per parameter
    Task 6.3  DDP                    buckets of gradients, all-reduced asynchronously while
                                     backward() is still running

Everything runs under `torch.distributed` with the default process group
(gloo on CPU, NCCL on GPU), already initialised by whoever calls you: every
rank runs this same file on its own shard of the batch. Run the public tests
with `grader test ddp` (or plain `pytest assignments/ddp`); they start the
ranks for you, each in its own process.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

MB = 2**20  # bytes in one "MB" of bucket_size_mb


def _check_rank(rank: int, name: str) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"{name} must be an int, got {type(rank).__name__}")
    world_size = dist.get_world_size()
    if not 0 <= rank < world_size:
        raise ValueError(f"{name}={rank} is out of range for world size {world_size}")


def broadcast_parameters(module: nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers equal to rank `src`'s, in place.

    Every rank calls it with the same module layout; afterwards each parameter
    and each buffer (e.g. BatchNorm's running statistics) holds `src`'s values.
    Parameters stay the same objects (an optimizer may already hold them).

    Args:
        module: the model, the same architecture on every rank.
        src:    the rank whose values win, 0 <= src < world size.
    Raises:
        ValueError: src out of range.
    """
    _check_rank(src, "src")
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_contiguous():
                dist.broadcast(tensor, src=src)
            else:  # collectives need contiguous memory: go through a copy
                copy = tensor.contiguous()
                dist.broadcast(copy, src=src)
                tensor.copy_(copy)


def all_reduce_gradients(module: nn.Module) -> None:
    """Average every gradient over the ranks, one parameter at a time (blocking).

        p.grad <- (1 / N) * sum over ranks r of p.grad_r        N = world size

    Call it after `loss.backward()` and before `optimizer.step()`. Every
    parameter with `requires_grad` takes part; a parameter that got no gradient
    on this rank (`p.grad is None`, e.g. unused in this forward pass) counts as
    zeros and gets a zero gradient first, so every rank issues the same
    collectives in the same order. Parameters without `requires_grad` are
    skipped and keep `grad = None`.
    """
    for param in module.parameters():
        if not param.requires_grad:
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)


class DDP(nn.Module):
    """Distributed data parallel with gradient buckets and overlap.

    At construction: broadcast rank 0's parameters and buffers, pack the
    parameters that require gradients into buckets, and register a
    post-accumulate-grad hook on each of them.

    Buckets: walk the parameters in *reverse* registration order (the order
    backward produces their gradients) and fill buckets greedily; start a new
    bucket when the next parameter would push the current one past
    `bucket_size_mb` MB (1 MB = 2^20 bytes) or has another dtype or device.
    A parameter larger than the limit gets a bucket of its own; 0 means one
    bucket per parameter.

    During backward: when the last gradient of a bucket has been accumulated,
    the bucket is ready. Bucket i is launched -- flattened into one tensor and
    all-reduced with `async_op=True` -- as soon as it and every bucket before
    it are ready, so every rank issues the same collectives in the same order.
    `finish_gradient_synchronization()` launches the buckets still waiting
    (a parameter unused in this step never becomes ready; it counts as zeros),
    waits for every handle, divides by the world size and writes the averages
    back into each `p.grad`. Call it after backward, before `optimizer.step()`.

    Args:
        module:         the model to wrap (kept as `self.module`).
        bucket_size_mb: bucket capacity in MB (2^20 bytes), a finite number >= 0.
    Raises:
        ValueError: bucket_size_mb negative, nan or infinite.
        TypeError:  bucket_size_mb not a number.
    """

    def __init__(self, module: nn.Module, *, bucket_size_mb: float = 25.0):
        super().__init__()
        if isinstance(bucket_size_mb, bool) or not isinstance(bucket_size_mb, (int, float)):
            raise TypeError(f"bucket_size_mb must be a number, got {type(bucket_size_mb).__name__}")
        if not math.isfinite(bucket_size_mb) or bucket_size_mb < 0:
            raise ValueError(f"bucket_size_mb must be a finite number >= 0, got {bucket_size_mb}")
        self.module = module
        self.world_size = dist.get_world_size()
        broadcast_parameters(module, src=0)

        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _make_buckets(params, bucket_size_mb * MB)
        self._bucket_of = {id(p): i for i, bucket in enumerate(self._buckets) for p in bucket}
        _reset(self)
        for param in params:
            param.register_post_accumulate_grad_hook(lambda p: _on_gradient_ready(self, p))

    def forward(self, *args, **kwargs):
        """Run the wrapped module (each rank on its own shard of the batch)."""
        return self.module(*args, **kwargs)

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets still waiting, wait for all, write averaged grads back."""
        while self._next_launch < len(self._buckets):
            _launch(self, self._next_launch)
        for bucket, (work, flat) in zip(self._buckets, self._in_flight, strict=True):
            work.wait()
            flat.div_(self.world_size)
            offset = 0
            for param in bucket:
                average = flat[offset:offset + param.numel()].view_as(param)
                offset += param.numel()
                if param.grad is None:  # unused on this rank: materialise the average
                    param.grad = average.clone()
                else:
                    param.grad.copy_(average)
        _reset(self)


def _make_buckets(params: list[Tensor], capacity_bytes: float) -> list[list[Tensor]]:
    """Greedy buckets over `params` in reverse order; see DDP's docstring."""
    buckets: list[list[Tensor]] = []
    size = 0
    for param in reversed(params):
        nbytes = param.numel() * param.element_size()
        current = buckets[-1] if buckets else None
        if (current is None or size + nbytes > capacity_bytes
                or param.dtype != current[0].dtype or param.device != current[0].device):
            buckets.append([param])
            size = nbytes
        else:
            current.append(param)
            size += nbytes
    return buckets


def _reset(ddp: DDP) -> None:
    """State of one synchronisation: nothing ready, nothing launched."""
    ddp._waiting = [len(bucket) for bucket in ddp._buckets]  # gradients still to come
    ddp._seen = set()
    ddp._next_launch = 0
    ddp._in_flight = []  # (work handle, flat bucket), in launch order


def _on_gradient_ready(ddp: DDP, param: Tensor) -> None:
    """Hook: param.grad now holds this backward's accumulated gradient."""
    if id(param) in ddp._seen:  # a second backward before finishing: already counted
        return
    ddp._seen.add(id(param))
    ddp._waiting[ddp._bucket_of[id(param)]] -= 1
    # Launch in bucket order only: every rank must issue the same sequence.
    while ddp._next_launch < len(ddp._buckets) and ddp._waiting[ddp._next_launch] == 0:
        _launch(ddp, ddp._next_launch)


def _launch(ddp: DDP, index: int) -> None:
    """Flatten bucket `index` (missing gradients as zeros) and start its all-reduce."""
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in ddp._buckets[index]])
    work = dist.all_reduce(flat, op=dist.ReduceOp.SUM, async_op=True)
    ddp._in_flight.append((work, flat))
    ddp._next_launch += 1
