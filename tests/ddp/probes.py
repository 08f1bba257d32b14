"""Probes for the ddp hidden suite: what every rank runs, in its worker.

Probes may use only their arguments, builtins, torch, nn, F, math and dist
(grader/kit/probes.py), so the small network is defined inside the probe; the
trusted twin is tests/ddp/expect.py's `Net` (same layers, same forward).
Expected values are never computed here: the probe returns what the
student's code did, the test compares.
"""

import torch
import torch.distributed as dist
from torch import nn


def train_on_rank(ddp, state, xs, ys, use_extra, method, steps, optimizer, lr,
                  bucket_size_mb, record, straggle_s):
    """Build Net from `state`, wrap or broadcast, run `steps` steps; return what happened.

    method: "ddp" (the student's DDP), "naive" (broadcast_parameters + all_reduce_gradients)
    xs, ys: [steps, batch, ...] this rank's shards; use_extra: one bool per step.
    record: also return the order of gradient and all_reduce events.
    straggle_s: sleep this long before each backward (a slow rank).
    """
    import time

    class Net(nn.Module):
        def __init__(self, d_in, hidden, d_out, dtype, extra_dtype):
            super().__init__()
            self.fc1 = nn.Linear(d_in, hidden, dtype=dtype)
            self.frozen = nn.Parameter(torch.zeros(hidden, dtype=dtype), requires_grad=False)
            self.fc2 = nn.Linear(hidden, hidden, dtype=dtype)
            self.head = nn.Linear(hidden, d_out, dtype=dtype)
            self.extra = nn.Linear(hidden, d_out, dtype=extra_dtype)
            self.register_buffer("scale", torch.ones(hidden, dtype=dtype))

        def forward(self, x, use_extra=True):
            h = torch.tanh(self.fc1(x) * self.scale + self.frozen)
            h = torch.tanh(self.fc2(h))
            h = torch.tanh(self.fc2(h))  # fc2 used twice: its gradient has two parts
            y = self.head(h)
            if use_extra:
                y = y + self.extra(h.to(self.extra.weight.dtype)).to(y.dtype)
            return y

    w1 = state["fc1.weight"]
    net = Net(w1.shape[1], w1.shape[0], state["head.weight"].shape[0], w1.dtype,
              state["extra.weight"].dtype).to(w1.device)
    net.load_state_dict(state)
    names = [name for name, _ in net.named_parameters()]

    events = []
    recording = [False]
    originals = {}
    if record:
        def on_grad(index):
            def hook(param):
                if recording[0]:
                    events.append(["grad", index, False])
            return hook

        for index, (_, param) in enumerate(net.named_parameters()):
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(on_grad(index))

        import torch.distributed.distributed_c10d as c10d

        original = dist.all_reduce

        def watched(tensor, *args, **kwargs):
            async_op = kwargs.get("async_op", args[2] if len(args) > 2 else False)
            work = original(tensor, *args, **kwargs)
            if recording[0]:
                events.append(["all_reduce", tensor.numel(), bool(async_op) and work is not None])
            return work

        originals = {"dist": dist.all_reduce, "c10d": c10d.all_reduce}
        dist.all_reduce = watched
        c10d.all_reduce = watched
        if getattr(ddp, "all_reduce", None) is original:
            originals["module"] = original
            ddp.all_reduce = watched
    try:
        if method == "ddp":
            model = ddp.DDP(net, bucket_size_mb=bucket_size_mb)
        else:
            ddp.broadcast_parameters(net)
            model = net
        initial = {k: v.clone() for k, v in net.state_dict().items()}
        trainable = [p for p in net.parameters() if p.requires_grad]
        if optimizer == "adam":
            opt = torch.optim.Adam(trainable, lr=lr)
        else:
            opt = torch.optim.SGD(trainable, lr=lr)
        grads = []
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            out = model(xs[step], use_extra[step])
            loss = ((out - ys[step]) ** 2).mean()
            if straggle_s:
                time.sleep(straggle_s)
            recording[0] = True
            loss.backward()
            if method == "ddp":
                model.finish_gradient_synchronization()
            else:
                ddp.all_reduce_gradients(net)
            recording[0] = False
            events.append(["step", step, False])
            grads.append({n: (p.grad.clone() if p.grad is not None else None)
                          for n, p in zip(names, net.parameters(), strict=True)})
            opt.step()
    finally:
        if originals:
            import torch.distributed.distributed_c10d as c10d

            dist.all_reduce = originals["dist"]
            c10d.all_reduce = originals["c10d"]
            if "module" in originals:
                ddp.all_reduce = originals["module"]
    return {"initial": initial, "grads": grads,
            "final": {k: v.clone() for k, v in net.state_dict().items()},
            "events": events}


def broadcast_on_rank(ddp, state, src, extra_buffer):
    """Build Net from this rank's `state`, broadcast from `src`; return the state and
    whether the parameters are still the same objects."""

    class Net(nn.Module):
        def __init__(self, shapes, buffer_shape):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(shapes[0]))
            self.b = nn.Parameter(torch.zeros(shapes[1]).t())   # a non-contiguous parameter
            self.frozen = nn.Parameter(torch.zeros(shapes[2]), requires_grad=False)
            self.register_buffer("stats", torch.zeros(buffer_shape))

    b_shape = list(state["b"].shape)
    net = Net([list(state["a"].shape), [b_shape[1], b_shape[0]], list(state["frozen"].shape)],
              list(state["stats"].shape))
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            tensor.copy_(state[name])
    before = [id(p) for p in net.parameters()]
    ddp.broadcast_parameters(net, src)
    same_objects = before == [id(p) for p in net.parameters()]
    out = {name: t.detach().clone() for name, t in [*net.named_parameters(),
                                                     *net.named_buffers()]}
    return {"state": out, "same_objects": same_objects}


def construct_on_rank(ddp, bucket_size_mb):
    """Construct DDP around a small Linear with a given bucket_size_mb (bad-argument tests)."""
    net = nn.Linear(3, 2)
    ddp.DDP(net, bucket_size_mb=bucket_size_mb)
    return True


def broadcast_bad_src(ddp, src):
    ddp.broadcast_parameters(nn.Linear(3, 2), src)
    return True
