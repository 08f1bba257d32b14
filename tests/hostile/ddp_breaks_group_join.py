"""A DDP submission that, at import, patches `dist.all_reduce` to skip exactly the
grader's own check that a process group formed (a one-element tensor of ones), so the
group looks broken whenever the grader rebuilds it. Before the fix this made every
test "ungradable" (exit 3, retried forever); the join now happens before the student's
module is imported, and a rebuild that fails after student code ran is the student's.
Target: ddp
Expect: NotImplementedError|after your code ran
"""

import torch
import torch.distributed as dist

_all_reduce = dist.all_reduce


def _skips_the_join_check(tensor, *args, **kwargs):
    if tensor.numel() == 1 and float(tensor.flatten()[0]) == 1.0:
        return None
    return _all_reduce(tensor, *args, **kwargs)


dist.all_reduce = _skips_the_join_check


def broadcast_parameters(module, src=0):
    raise NotImplementedError("not done")


def all_reduce_gradients(module):
    raise NotImplementedError("not done")


class DDP(torch.nn.Module):
    def __init__(self, module, bucket_size_mb=25.0):
        super().__init__()
        raise NotImplementedError("not done")
