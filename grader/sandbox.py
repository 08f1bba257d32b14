"""What the worker process may use: its environment and its resource limits.

The worker inherits nothing secret: a fresh environment with only what torch
and Triton need, HOME and TMPDIR in its scratch directory. Resource limits are
set in the child between fork and exec (`preexec_fn`).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

GiB = 1 << 30
MEMORY_LIMIT_BYTES = 6 * GiB       # address space, CPU-only machines (CUDA maps far more)
CPU_LIMIT_S = 1800                 # a backstop; each call also has a wall-clock timeout
OPEN_FILES_LIMIT = 512

PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                  "TRITON_INTERPRET", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def worker_environment(scratch: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(
        HOME=str(scratch), TMPDIR=str(scratch), PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
        TRITON_CACHE_DIR=str(scratch / ".triton"),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    return env


def worker_limits() -> None:
    """Runs in the child before exec: cap what student code can consume."""
    die_with_parent()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
    if os.environ.get("TRITON_INTERPRET") == "1":
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def die_with_parent() -> None:
    """Linux: SIGKILL the worker when the trusted process that started it dies."""
    try:
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
