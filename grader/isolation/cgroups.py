"""A control group per worker: the kernel's limits on all of a worker's processes together.

Limits on one process (rlimits, the watchdog on the worker's resident memory) miss what a
worker spreads over threads and children. A control group counts the worker and
everything it starts, so the trusted side can

- cap memory: anything its processes hold (heap, files in its tmpfs, kernel memory),
  enforced by the kernel between two replies as much as during a call;
- cap the number of tasks (processes and threads), and give it a small CPU weight, so
  that on a busy machine the grader's own threads (timeouts, watchdog) run first;
- tell a kill for memory (the kernel's OOM killer) from any other SIGKILL;
- kill every process in it, and know when none is left.

Needs root. Both layouts of Linux control groups work: v1, one hierarchy per controller
(/sys/fs/cgroup/memory/...; the worker's group goes inside the grader's own, so the
limits of a container still hold), and v2, one hierarchy (/sys/fs/cgroup/...).
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CPU_WEIGHT = 0.25    # of a default group's: v1 cpu.shares 1024, v2 cpu.weight 100
EMPTY_WAIT_S = 5.0   # how long `remove` waits for killed processes to be gone

_names = itertools.count()


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    tasks: int


@dataclass(frozen=True)
class Cgroup:
    """One worker's control group: a directory per v1 hierarchy, or one v2 directory."""

    directories: tuple[Path, ...]
    version: int
    limits: Limits

    @classmethod
    def create(cls, limits: Limits) -> Cgroup:
        """A new, empty group with these limits (OSError if this machine has none)."""
        # pid and count name it for a person; the random part keeps a later process that
        # reuses the pid from meeting a group an earlier one could not remove
        name = f"llmlab-worker-{os.getpid()}-{next(_names)}-{secrets.token_hex(4)}"
        if _version() == 1:
            group = cls(tuple(_own_v1(c) / name for c in CONTROLLERS), 1, limits)
        else:
            _enable_v2_controllers()
            group = cls((ROOT / name,), 2, limits)
        try:
            for directory in group.directories:
                directory.mkdir()
            group._limit()
        except OSError:
            group.remove()
            raise
        return group

    def _limit(self) -> None:
        limits = self.limits
        if self.version == 1:
            memory, pids, cpu = self.directories
            _write(memory / "memory.limit_in_bytes", limits.memory_bytes)
            if (memory / "memory.memsw.limit_in_bytes").exists():   # no escape into swap
                _write(memory / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            _write(pids / "pids.max", limits.tasks)
            _write(cpu / "cpu.shares", int(1024 * CPU_WEIGHT))
        else:
            (group,) = self.directories
            _write(group / "memory.max", limits.memory_bytes)
            if (group / "memory.swap.max").exists():
                _write(group / "memory.swap.max", 0)
            _write(group / "pids.max", limits.tasks)
            _write(group / "cpu.weight", int(100 * CPU_WEIGHT))

    def attach(self, pid: int) -> None:
        """Move a process into the group (in the worker's child, before exec: what it
        starts later is born inside)."""
        for directory in self.directories:
            _write(directory / "cgroup.procs", pid)

    def memory_in_use(self) -> int:
        """Anonymous and shared memory of all the group's processes (not the page cache,
        which the kernel reclaims before it would kill), in bytes."""
        stat = _keyed(self.directories[0] / "memory.stat")
        if self.version == 1:
            return stat.get("rss", 0) + stat.get("shmem", 0)
        return stat.get("anon", 0) + stat.get("shmem", 0)

    def killed_for_memory(self) -> bool:
        """Did the kernel kill one of its processes for going over the memory limit?"""
        events = "memory.oom_control" if self.version == 1 else "memory.events"
        return _keyed(self.directories[0] / events).get("oom_kill", 0) > 0

    def cpu_seconds(self) -> float | None:
        """CPU time all the group's processes have used, alive or exited (None where this
        hierarchy does not count it: v1 without cpuacct beside cpu)."""
        if self.version == 2:
            usage = _keyed(self.directories[0] / "cpu.stat").get("usage_usec")
            return None if usage is None else usage / 1e6
        try:
            return int((self.directories[2] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None

    def pids(self) -> set[int]:
        found = set()
        for directory in self.directories:
            try:
                found |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def remove(self) -> None:
        """Kill every process in the group, wait until they are gone, delete the group."""
        if self.version == 2 and (self.directories[0] / "cgroup.kill").exists():
            _write(self.directories[0] / "cgroup.kill", 1)    # all at once, by the kernel
        deadline = time.monotonic() + EMPTY_WAIT_S
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:   # a process killed here cannot fork any more
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        for directory in self.directories:
            try:
                directory.rmdir()
            except OSError:   # gone already, or still busy (then empty once the kernel is done)
                pass


def _version() -> int:
    if (ROOT / "memory" / "memory.limit_in_bytes").exists():
        return 1
    if {"memory", "pids", "cpu"} <= set((ROOT / "cgroup.controllers").read_text().split()):
        return 2
    raise OSError("no memory, pids and cpu controllers under /sys/fs/cgroup")


def _own_v1(controller: str) -> Path:
    """The grader's own group in a v1 hierarchy (its root when a container hides the path)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            own = ROOT / controller / path.lstrip("/")
            return own if own.is_dir() else ROOT / controller
    raise OSError(f"no {controller} controller in /proc/self/cgroup")


def _enable_v2_controllers() -> None:
    """v2: a group's controllers must be enabled in its parent, here the hierarchy's root."""
    enabled = set((ROOT / "cgroup.subtree_control").read_text().split())
    missing = [c for c in CONTROLLERS if c not in enabled]
    if missing:
        _write(ROOT / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def _keyed(path: Path) -> dict[str, int]:
    """A 'key value' file (memory.stat, memory.events, ...) as a dict; {} if unreadable."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split() for line in lines)
    return {p[0]: int(p[1]) for p in pairs if len(p) == 2 and p[1].lstrip("-").isdigit()}
