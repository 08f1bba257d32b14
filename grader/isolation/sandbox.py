"""What the worker process may use and see: environment, limits, user, network, files.

Everything here runs in the child between fork and exec (`Sandbox.enter`, the
`preexec_fn`), except `Sandbox.detect`, which finds out once what this
machine allows. Defences, strongest first, each used where the OS allows it:

- always: a fresh environment (no tokens), HOME/TMPDIR in the scratch
  directory, limits on CPU time, open files and core dumps, address space on
  CPU-only machines, death with the parent;
- when the grader runs as root (CI containers, the class-grading workflow):
  a throwaway unprivileged uid per worker (it cannot signal the grader or
  other workers, write the grader's files, or fork more than NPROC tasks), a
  private mount namespace where the repository's hidden tests, reference
  solutions and git history are covered by empty tmpfs mounts, and a network
  namespace with only a loopback interface (shared by the workers of one
  trusted process, so DDP ranks reach each other and nothing else).

`describe()` says what is in force; grading records it in results.json.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import itertools
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

GiB = 1 << 30
MEMORY_LIMIT_BYTES = 6 * GiB       # address space, CPU-only machines (CUDA maps far more)
RESIDENT_LIMIT_BYTES = 3 * GiB     # resident memory, watched by the trusted side (any machine)
CPU_LIMIT_S = 1800                 # a backstop; each call also has a wall-clock timeout
OPEN_FILES_LIMIT = 512
TASKS_LIMIT = 256                  # processes + threads of one worker uid (fork bombs)
WORKER_UID_BASE = 200_000          # throwaway uids, no passwd entry needed

PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                  "TRITON_INTERPRET", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x1, 0x20, 0x1000, 0x4000, 0x40000
SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                      "/dev", "/proc", "/sys")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def worker_environment(scratch: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env.update(
        HOME=str(scratch), TMPDIR=str(scratch), PYTHONHASHSEED="0",
        PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1",
        TRITON_CACHE_DIR=str(scratch / ".triton"),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    return env


@dataclass
class Sandbox:
    """What this trusted process can impose on its workers (found once, by detect)."""

    switch_user: bool = False
    hide_files: bool = False
    network_holder: subprocess.Popen | None = None   # owns the workers' network namespace
    reason: str = ""                                 # why something is not in force
    visible: tuple[str, ...] = ()                    # what the worker's filesystem shows
    staging: str = ""                                # mount point of the worker's root
    _uids = itertools.count()

    def describe(self) -> dict[str, str]:
        return {
            "user": "a throwaway unprivileged uid per worker" if self.switch_user
            else f"the grader's own user ({self.reason or 'not root'})",
            "network": "loopback only (private network namespace)" if self.network_holder
            else f"not isolated ({self.reason or 'needs root'})",
            "files": "a private root with only system directories, the interpreter and the "
            "scratch directory" if self.hide_files
            else "the machine's (hidden tests are off the import path, not unreadable)",
            "limits": f"CPU {CPU_LIMIT_S} s, {OPEN_FILES_LIMIT} open files, no core dumps"
            + (f", {TASKS_LIMIT} tasks" if self.switch_user else "")
            + (f", {MEMORY_LIMIT_BYTES // GiB} GiB address space"
               if os.environ.get("TRITON_INTERPRET") == "1" else ""),
        }

    def new_uid(self) -> int | None:
        """A uid for the next worker: unique among the live workers of this machine."""
        if not self.switch_user:
            return None
        return WORKER_UID_BASE + (os.getpid() % 20_000) * 50 + next(self._uids) % 50

    def prepare_scratch(self, scratch: Path, uid: int | None) -> None:
        if uid is None:
            return
        for path in [scratch, *scratch.rglob("*")]:
            os.chown(path, uid, uid)

    def enter(self, uid: int | None, scratch: Path) -> None:
        """In the child, before exec: drop into the sandbox. Order matters: namespaces and
        limits need root; the uid switch comes last."""
        die_with_parent()
        if self.network_holder is not None:
            _join_network_namespace(self.network_holder.pid)
        if self.hide_files:
            _enter_minimal_root(self.staging, self.visible, str(scratch))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
        if os.environ.get("TRITON_INTERPRET") == "1":
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (TASKS_LIMIT, TASKS_LIMIT))
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    def close(self) -> None:
        if self.network_holder is not None:
            self.network_holder.kill()
            self.network_holder.wait()
            self.network_holder = None
        if self.staging:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = ""


_SANDBOX: Sandbox | None = None
_DETECTING = threading.Lock()


def sandbox() -> Sandbox:
    """This process's sandbox, detected on first use (once, even when workers of DDP ranks
    start from several threads at a time: they must share one network namespace)."""
    global _SANDBOX
    with _DETECTING:
        if _SANDBOX is None:
            _SANDBOX = detect()
    return _SANDBOX


def detect() -> Sandbox:
    """The strongest sandbox this machine allows, checked by starting a sandboxed Python."""
    if os.geteuid() != 0:
        return Sandbox(reason="the grader is not root")
    box = Sandbox(switch_user=True)
    if os.environ.get("LLMLAB_NO_NAMESPACES") != "1":
        try:
            box.network_holder = _start_network_holder()
            box.hide_files = True
            box.visible = _visible_paths()
            box.staging = tempfile.mkdtemp(prefix="llmlab-root-")
            os.chmod(box.staging, 0o755)
        except (OSError, subprocess.SubprocessError) as error:
            box.close()
            box = Sandbox(switch_user=True, reason=f"no namespaces here ({error})")
    problem = _try(box)
    if problem:
        box.close()
        return Sandbox(reason=f"a sandboxed interpreter did not start ({problem})")
    return box


def _try(box: Sandbox) -> str:
    """Start `python -c pass` inside the sandbox; '' if it works, else why not."""
    scratch = Path(tempfile.mkdtemp(prefix="llmlab-try-"))
    uid = box.new_uid()
    box.prepare_scratch(scratch, uid)
    try:
        subprocess.run([sys.executable, "-I", "-c", "import torch"], check=True, timeout=120,
                       capture_output=True, cwd=scratch, env=worker_environment(scratch),
                       preexec_fn=functools.partial(box.enter, uid, scratch))
    except subprocess.CalledProcessError as error:
        return (error.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ""


# ------------------------------------------------------------ namespaces --
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _start_network_holder() -> subprocess.Popen:
    """A tiny process that owns a new network namespace (loopback up) until we exit;
    workers join it with setns. It sleeps on a pipe that closes when we die."""
    holder = subprocess.Popen(
        [sys.executable, "-I", "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_new_network_namespace, close_fds=True)
    return holder


def _new_network_namespace() -> None:
    # No PDEATHSIG here: it fires when the *thread* that started us ends. The holder
    # exits instead when its stdin pipe closes, i.e. when the trusted process dies.
    _check(_libc().unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def _join_network_namespace(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        _check(_libc().setns(fd, CLONE_NEWNET), "setns")
    finally:
        os.close(fd)


def _enter_minimal_root(new_root: str, visible: tuple[str, ...], scratch: str) -> None:
    """A private mount namespace whose root shows only `visible` (system directories, the
    interpreter and its libraries, read-only) and the scratch directory (read-write); then
    chroot into it. Hidden tests, reference solutions, other copies of the repository and
    home directories simply do not exist there."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount private")
    _check(libc.mount(b"tmpfs", new_root.encode(), b"tmpfs", 0, b"size=1m,mode=755"),
           "mount tmpfs root")
    for path in (*visible, scratch):
        target = new_root + path
        if os.path.islink(path):                     # /bin -> usr/bin on merged-/usr systems
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        os.makedirs(target, exist_ok=True)
        _check(libc.mount(path.encode(), target.encode(), None, MS_BIND | MS_REC, None),
               f"bind {path}")
        if path != scratch and path not in ("/dev", "/proc"):
            _check(libc.mount(b"none", target.encode(), None,
                              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC, None),
                   f"read-only {path}")
    os.chroot(new_root)
    os.chdir(scratch)


def _visible_paths() -> tuple[str, ...]:
    """System directories and the interpreter's own: all a worker needs to run Python,
    torch and Triton (compilers and CUDA libraries live under /usr)."""
    system = [p for p in SYSTEM_DIRECTORIES if os.path.lexists(p)]
    interpreter = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    interpreter |= {sys.prefix, os.path.dirname(os.path.realpath(sys.executable))}
    kept = [p for p in sorted(interpreter) if not any(
        p == s or p.startswith(s.rstrip("/") + "/") for s in system)]
    outermost = [p for p in kept if not any(
        p != q and p.startswith(q.rstrip("/") + "/") for q in kept)]
    return (*system, *outermost)


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that started it dies."""
    try:
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
