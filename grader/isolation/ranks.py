"""Rank groups: N worker processes that form one torch.distributed process group.

Distributed assignments (ddp) need the student's code running on several
ranks at once. A `RankGroup` is N `WorkerProcess`es (grader/isolation/worker.py), one
per rank, each with the student's module imported and a gloo (or NCCL)
default process group joined over loopback:

    group = ranks(2)                 # the `ranks` fixture (grader/kit/ranks.py)
    results = group.run(probe, per_rank=[(w0,), (w1,)], steps=3)
    # -> [value from rank 0, value from rank 1]

`run` calls the same probe (grader/kit/probes.py) on every rank concurrently, one
thread per worker (a collective only completes when every rank has entered
it), and returns the per-rank values. Rules:

- A student exception on any rank fails the call with that exception (of the
  rank that failed first, its message prefixed with the rank); the other ranks get a
  short grace period and are then killed, since they are likely blocked in a
  collective that will never complete.
- A crash or hang on any rank poisons the whole group (its collectives can
  never complete): the rest of the current test fails at once with
  `StudentCrash`, and the next test gets a fresh group. As for single workers,
  what crashed or hung in two tests is not run again (grader/isolation/strikes.py);
  the group counts it (per probe, or per `strike_key`), not each rank.
- What the ranks printed during the test rides on the raised exception
  (`student_output`, shown beside the failure), rank by rank.
- After any exception the default process group is rebuilt before the next
  call (destroy + init on a new port), so collectives left half-issued by a
  failed call cannot pair up with the next call's.
- Every process group has a timeout (`collective_timeout_s`), and every call
  a wall-clock timeout (the assignment's `call_timeout_s`): a mismatch of
  collectives between ranks ends in bounded time, never a stalled grading run.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import torch
import torch.distributed as dist

from grader.isolation.errors import GraderFault, StudentCrash, StudentError
from grader.isolation.proxies import call_remote
from grader.isolation.sandbox import sandbox
from grader.isolation.strikes import Strikes
from grader.isolation.worker import OUTPUT_SHOWN_BYTES, WorkerConfig, WorkerProcess
from grader.kit.probes import probe_source

#: Environment for every rank: gloo talks over loopback only.
RANK_ENVIRONMENT = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo",
                    "MASTER_ADDR": "127.0.0.1",
                    # c10d's own time-stamped warnings would land among the student's prints
                    "TORCH_CPP_LOG_LEVEL": "ERROR"}
GRACE_S = 3.0  # how long the other ranks may still finish after one rank failed


def free_port() -> int:
    """A TCP port nobody listens on right now (never a hard-coded one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_process_group(module, rank, world_size, backend, address, timeout_s):
    """Probe: (re)join the default process group of this rank."""
    import datetime

    if dist.is_initialized():
        dist.destroy_process_group()
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend, init_method=address, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    check = torch.ones(1, device="cuda" if backend == "nccl" else "cpu")
    dist.all_reduce(check)
    return [dist.get_rank(), dist.get_world_size(), int(check.item())]


@dataclass(frozen=True)
class GroupConfig:
    world_size: int
    scratch_files: dict           # name in the scratch dir -> source file (student's + provided)
    module: str                   # the student's module name
    call_timeout_s: float = 60.0
    collective_timeout_s: float = 20.0
    backend: str = "gloo"
    problem: str | None = None    # why the student's file was not collected (WorkerConfig)


class RankGroup:
    """N workers, one per rank, sharing one default process group."""

    def __init__(self, config: GroupConfig):
        if config.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {config.world_size}")
        self.config = config
        self.workers = [WorkerProcess(WorkerConfig(
            scratch_files=dict(config.scratch_files), module=config.module,
            call_timeout_s=config.call_timeout_s, extra_environment=dict(RANK_ENVIRONMENT),
            problem=config.problem), strikes=Strikes(limit=None))  # the group counts them
            for _ in range(config.world_size)]
        # one thread per rank, for the group's lifetime (see _each)
        self.executors = [ThreadPoolExecutor(1, thread_name_prefix=f"rank{r}")
                          for r in range(config.world_size)]
        self.joined = False        # every worker is in the current process group
        self.poisoned: str | None = None
        self.strikes = Strikes()  # per probe or strike_key, for the whole group
        self.calls = 0
        self.killed: set[int] = set()  # ranks killed after GRACE_S in the last call

    @property
    def world_size(self) -> int:
        return self.config.world_size

    # ---------------------------------------------------------- lifecycle --
    def new_test(self) -> None:
        """A new test starts: forget the previous test's crash (the group restarts lazily)."""
        self.poisoned = None
        for worker in self.workers:
            worker.new_test()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.joined = False

    def close(self) -> None:
        """Stop the workers and their threads (end of the session)."""
        self.stop()
        for executor in self.executors:
            executor.shutdown(wait=False)

    def _start(self) -> None:
        """Start every worker (concurrently: each imports torch), join a process group, then
        import the student's module: a group that does not form before any student code
        ran is the grader's fault (ungradable); after it ran, the student's."""
        for worker in self.workers:  # a module that failed to import fails the same way again
            worker._raise_if_broken()
        fresh = any(w.process is None for w in self.workers)
        if fresh:
            sandbox()  # detected once, here: concurrent first starts would each make one
            self._restart()
            for worker in self.workers:
                worker._raise_if_broken()
        self._join()
        if fresh:
            self._each(lambda rank, worker: worker.import_student_module())
            for worker in self.workers:
                worker._raise_if_broken()

    def _join(self) -> None:
        last_error = None
        for _attempt in range(2):  # a port taken between free_port() and bind: retry once
            address = f"tcp://127.0.0.1:{free_port()}"
            source = probe_source(_join_process_group)
            target = ("probe", None, (source, _join_process_group.__name__))
            outcomes = self._each(lambda rank, worker, target=target, address=address: call_remote(
                worker, target, [rank, self.world_size, self.config.backend, address,
                                 self.config.collective_timeout_s], {}))
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            if not errors and all(o == [r, self.world_size, self.world_size]
                                  for r, o in enumerate(outcomes)):
                self.joined = True
                return
            last_error = (f"{type(errors[0]).__name__}: {errors[0]}" if errors
                          else f"the ranks reported {outcomes}")
            if any(w.student_code_loaded for w in self.workers):
                break  # student code ran in these processes: rebuilding again proves nothing
            self._restart()
        what = (f"could not form a {self.config.backend} process group of {self.world_size} "
                f"ranks: {last_error}")
        if any(w.student_code_loaded for w in self.workers):
            raise StudentCrash(f"after your code ran, the grader {what}")
        raise GraderFault(what)

    def _restart(self) -> None:
        self.stop()
        for worker in self.workers:  # the group decides what a crash poisons (self.poisoned)
            worker.poisoned = None
        self._each(lambda rank, worker: worker.start(import_module=False))

    # ------------------------------------------------------------- running --
    def run(self, probe, per_rank=None, *, args=(), strike_key: str | None = None,
            **kwargs) -> list:
        """probe(student_module, *per_rank[r], *args, **kwargs) on every rank r at once.

        per_rank: None, or one tuple of leading arguments per rank.
        strike_key: what a crash or hang is counted against (default: the probe's name).
            As for a single worker (grader/isolation/strikes.py), but counted once for the
            whole group: after STRIKES tests in which it crashed or hung, it is not run again.
        Returns the list of per-rank results (plain data).
        """
        if per_rank is not None and len(per_rank) != self.world_size:
            raise ValueError(f"per_rank has {len(per_rank)} entries for {self.world_size} ranks")
        if self.poisoned is not None:
            raise StudentCrash(self.poisoned)
        key = strike_key or f"the probe {probe.__name__}"
        self.strikes.check(key)
        if not self.joined or any(w.process is None for w in self.workers):
            self._start()
        source = probe_source(probe)
        target = ("probe", self.config.module, (source, probe.__name__))
        self.calls += 1
        seed = 1000 * self.calls

        def call(rank, worker):
            leading = list(per_rank[rank]) if per_rank is not None else []
            return call_remote(worker, target, [*leading, *args], kwargs, seed=seed + rank)

        outcomes = self._each(call, stop_on_error=True)
        errors = [(r, o) for r, o in enumerate(outcomes) if isinstance(o, BaseException)]
        if not errors:
            return outcomes
        self.joined = False  # collectives may be half-issued: rebuild the group first
        crashes = [(r, e) for r, e in errors if isinstance(e, StudentCrash)]
        faults = [(r, e) for r, e in errors if isinstance(e, GraderFault)]
        raised = [(r, e) for r, e in errors if not isinstance(e, (StudentCrash, GraderFault))]
        if crashes or faults:
            self.stop()
        if faults:
            raise faults[0][1]
        # The cause: a rank that died by itself (its peers only see connections drop),
        # else an exception that is not a reaction to a failed peer; a rank we killed
        # after GRACE_S is never the cause. Ties go to the lowest rank, not to the
        # fastest thread: the same submission must get the same message every run.
        died = [(r, e) for r, e in crashes if r not in self.killed]
        rank, error = min(died or raised or crashes,
                          key=lambda item: (_reacts_to_a_peer(item[1]), item[0]))
        if isinstance(error, StudentCrash) or "timed out" in str(error).lower():
            # the cause is a crash or a hang: the rest of this test fails at once
            self.strikes.record(key, f"rank {rank}: {error}"[:300])
            self.poisoned = f"rank {rank} of {self.world_size}: {error}"
        printed = self.printed()[-OUTPUT_SHOWN_BYTES:]
        if not isinstance(error, StudentCrash):
            error = _on_rank(error, rank, self.world_size)
            error.student_output = printed
            raise error
        self.poisoned = f"rank {rank} of {self.world_size}: {error}"
        error = StudentCrash(self.poisoned)
        error.student_output = printed
        raise error

    def printed(self) -> str:
        """What the ranks printed during the current test (the end of it), rank by rank."""
        parts = []
        for rank, worker in enumerate(self.workers):
            text = worker.printed_this_test().strip()
            if text:
                parts.append(f"--- rank {rank}:\n{text}")
        return "\n".join(parts)

    def _each(self, function, stop_on_error: bool = False) -> list:
        """function(rank, worker) on every rank at once; the results or exceptions.

        Each rank has one long-lived thread that does everything with its worker:
        Linux kills a child whose parent *thread* exits (PR_SET_PDEATHSIG in
        grader/isolation/sandbox.py), so a worker must be started by a thread that lives as
        long as the worker. With stop_on_error, once one rank has failed the
        others get GRACE_S to finish, then are killed (they are probably waiting
        for the failed rank in a collective).
        """
        futures = [executor.submit(function, rank, worker) for rank, (executor, worker)
                   in enumerate(zip(self.executors, self.workers, strict=True))]
        self.killed = set()
        failed_at = None
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.01, return_when=FIRST_EXCEPTION)
            if not stop_on_error:
                continue
            if failed_at is None and any(f.done() and f.exception() is not None
                                         for f in futures):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
                for future, worker in zip(futures, self.workers, strict=True):
                    if not future.done() and worker.process is not None:
                        self.killed.add(self.workers.index(worker))
                        worker.kill()  # its thread sees the channel close, reports a crash
                failed_at = float("inf")
        return [f.exception() if f.exception() is not None else f.result() for f in futures]


def _reacts_to_a_peer(error: BaseException) -> bool:
    """Errors a rank raises because another rank failed (a collective broke or timed out)."""
    message = str(error).lower()
    return any(sign in message for sign in ("gloo", "nccl", "connection closed", "connection reset",
                                            "broken pipe", "timed out", "timeout"))


def _on_rank(error: BaseException, rank: int, world_size: int) -> BaseException:
    """The student's exception, its message saying which rank raised it."""
    message = f"on rank {rank} of {world_size}: {error}"
    try:
        rebuilt = type(error)(message)
    except Exception:  # noqa: BLE001 - an exception type with another signature
        rebuilt = StudentError(f"{type(error).__name__}: {message}")
    rebuilt.student_traceback = getattr(error, "student_traceback", "")
    return rebuilt
