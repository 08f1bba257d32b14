"""Assignment 6: data-parallel training, naive and bucketed with overlap.

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


# Task 6.1: helper code for broadcast_parameters goes here (see README.md).


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
    raise NotImplementedError("Task 6.1: implement broadcast_parameters (see README.md)")


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
    raise NotImplementedError("Task 6.2: implement all_reduce_gradients (see README.md)")


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
        raise NotImplementedError("Task 6.3: implement DDP.__init__ (see README.md)")

    def forward(self, *args, **kwargs):
        """Run the wrapped module (each rank on its own shard of the batch)."""
        raise NotImplementedError("Task 6.3: implement DDP.forward (see README.md)")

    def finish_gradient_synchronization(self) -> None:
        """Launch the buckets still waiting, wait for all, write averaged grads back."""
        raise NotImplementedError("Task 6.3: implement DDP.finish_gradient_synchronization (see README.md)")


# Helper code goes here (see README.md).
