"""What the worker process may use and see: environment, limits, user, network, files.

Everything here runs in the child between fork and exec (`Sandbox.enter`, the
`preexec_fn`), except `Sandbox.detect`, which finds out once what this
machine allows. Defences, strongest first, each used where the OS allows it:

- always: a fresh environment (no tokens), HOME/TMPDIR in the scratch
  directory, limits on CPU time, open files, file size (its printed output
  too) and core dumps, address space on CPU-only machines, death with the
  parent;
- when the grader runs as root (CI containers, the class-grading workflow):
  a throwaway unprivileged uid per worker (it cannot signal the grader or
  other workers, write the grader's files, or fork more than NPROC tasks); a
  control group per worker (grader/isolation/cgroups.py: memory of all its
  processes together, tasks, CPU weight); a PID namespace per worker, so
  that nothing it starts outlives it and its /proc shows only its own
  processes; a private root filesystem with only system directories, the
  interpreter, a private /dev (a few devices, the GPUs, its own small
  /dev/shm) and a scratch directory in memory with a quota; and a network
  namespace with only a loopback interface (shared by the workers of one
  trusted process, so DDP ranks reach each other and nothing else).

`describe()` says what is in force; grading records it in results.json.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import functools
import itertools
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from grader.isolation.cgroups import Cgroup, Limits

MiB, GiB = 1 << 20, 1 << 30
MEMORY_LIMIT_BYTES = 6 * GiB       # address space, CPU-only machines (CUDA maps far more)
RESIDENT_LIMIT_BYTES = 3 * GiB     # memory, watched by the trusted side (any machine)
MEMORY_CAP_BYTES = 4 * GiB         # all of a worker's processes, the kernel's cap (root): above
                                   # the watchdog's limit, which acts first, with a plain message
CPU_LIMIT_S = 1800                 # a backstop; each call also has a wall-clock timeout
OPEN_FILES_LIMIT = 512
TASKS_LIMIT = 256                  # processes + threads of one worker uid (fork bombs)
FILE_SIZE_LIMIT_BYTES = 64 * MiB   # any one file a worker writes, its captured output too
SCRATCH_BYTES = 256 * MiB          # the scratch directory, a tmpfs (root)
SHM_BYTES = 64 * MiB               # its own /dev/shm, a tmpfs (root)
DEVICES = ("null", "zero", "full", "random", "urandom")   # in its /dev, with /dev/nvidia*
WORKER_UID_BASE = 200_000          # throwaway uids, no passwd entry needed
WORKER_LIMITS = Limits(memory_bytes=MEMORY_CAP_BYTES, tasks=TASKS_LIMIT)   # cgroups.py

PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH",
                  "TRITON_INTERPRET", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                      "/sys")                    # read-only; /proc and /dev are its own
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
    hide_files: bool = False                         # private root, /dev, /proc and scratch
    pid_namespace: bool = False
    cgroups: bool = False                            # a control group per worker
    network_holder: subprocess.Popen | None = None   # owns the workers' network namespace
    reason: str = ""                                 # why something is not in force
    visible: tuple[str, ...] = ()                    # what the worker's filesystem shows
    staging: str = ""                                # mount point of the worker's root
    _uids = itertools.count()

    def describe(self) -> dict[str, str]:
        """What is in force, and for what is not, what is missing and why (results.json)."""
        why = f"({self.reason or 'needs root'})"
        memory = f"{RESIDENT_LIMIT_BYTES / GiB:g} GiB"
        cap = f"{MEMORY_CAP_BYTES / GiB:g} GiB"
        return {
            "user": "a throwaway unprivileged uid per worker" if self.switch_user
            else f"the grader's own user ({self.reason or 'not root'})",
            "network": "loopback only (private network namespace)" if self.network_holder
            else f"not isolated {why}",
            "files": "a private root with only system directories, the interpreter and the "
            "scratch directory" if self.hide_files
            else "the machine's (hidden tests are off the import path, not unreadable)",
            "processes": "a PID namespace per worker: all it started is killed with it, its "
            "/proc shows only its own" if self.pid_namespace
            else f"not contained: what it starts may outlive grading and see other "
            f"processes in /proc {why}",
            "memory": f"a watchdog on all its processes together ({memory}), the kernel's "
            f"cap at {cap} (control group)" if self.cgroups
            else f"a watchdog on the worker process alone ({memory} resident, sampled); "
            f"threads are counted, its children not {why}",
            "devices": f"a private /dev: {', '.join(DEVICES)}, GPUs and its own "
            f"{SHM_BYTES // MiB} MiB /dev/shm" if self.hide_files
            else f"the machine's /dev: files in /dev/shm are shared and outlive it {why}",
            "disk": f"{FILE_SIZE_LIMIT_BYTES // MiB} MiB a file, printed output included"
            + (f"; {SCRATCH_BYTES // MiB} MiB scratch in memory" if self.hide_files
               else f"; no quota on its files in total {why}"),
            "limits": f"CPU {CPU_LIMIT_S} s, {OPEN_FILES_LIMIT} open files, no core dumps"
            + (f", {TASKS_LIMIT} tasks" if self.switch_user else "")
            + (", a small CPU weight" if self.cgroups else "")
            + (f", {MEMORY_LIMIT_BYTES // GiB} GiB address space"
               if os.environ.get("TRITON_INTERPRET") == "1" else ""),
        }

    def worker_uids(self) -> range:
        """The uids this trusted process gives its workers: none of another's."""
        first = WORKER_UID_BASE + (os.getpid() % 20_000) * 50
        return range(first, first + 50)

    def new_uid(self) -> int | None:
        """A uid for the next worker: unique among the live workers of this machine."""
        if not self.switch_user:
            return None
        return self.worker_uids()[next(self._uids) % 50]

    def new_cgroup(self) -> Cgroup | None:
        """A control group for the next worker (None where there are none)."""
        return Cgroup.create(WORKER_LIMITS) if self.cgroups else None

    def prepare_scratch(self, scratch: Path, uid: int | None) -> None:
        if uid is None:
            return
        for path in [scratch, *scratch.rglob("*")]:
            os.chown(path, uid, uid)

    def enter(self, uid: int | None, scratch: Path, cgroup: Cgroup | None = None) -> None:
        """In the child, before exec: drop into the sandbox. Order matters: the control
        group and the limits first (all that follows inherits them), then the namespaces,
        which need root; the uid switch comes last. With a PID namespace this process forks:
        only the child returns, to exec the worker (see _fork_into_new_pid_namespace)."""
        die_with_parent()
        if cgroup is not None:
            cgroup.attach(os.getpid())
        if self.network_holder is not None:
            _join_network_namespace(self.network_holder.pid)
        _set_limits(switch_user=uid is not None)
        if self.pid_namespace:
            _fork_into_new_pid_namespace()
            die_with_parent()
        if self.hide_files:
            _enter_minimal_root(self.staging, self.visible, str(scratch), uid)
        if uid is not None:
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


def _set_limits(switch_user: bool) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
    # Python ignores SIGXFSZ: a write past the limit fails with OSError EFBIG instead.
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT_BYTES, FILE_SIZE_LIMIT_BYTES))
    if os.environ.get("TRITON_INTERPRET") == "1":
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    if switch_user:
        resource.setrlimit(resource.RLIMIT_NPROC, (TASKS_LIMIT, TASKS_LIMIT))


_SANDBOX: Sandbox | None = None
_DETECTING = threading.Lock()


def sandbox() -> Sandbox:
    """This process's sandbox, detected on first use (once, even when workers of DDP ranks
    start from several threads at a time: they must share one network namespace)."""
    global _SANDBOX
    with _DETECTING:
        if _SANDBOX is None:
            _SANDBOX = detect()
            atexit.register(_SANDBOX.close)   # its network holder and staging directory
    return _SANDBOX


def detect() -> Sandbox:
    """The strongest sandbox this machine allows, checked by starting a sandboxed Python:
    with namespaces if they work, else without them, else with no more than a user has."""
    if os.geteuid() != 0:
        return Sandbox(reason="the grader is not root")
    cgroups, reason = _cgroups_work()
    if os.environ.get("LLMLAB_NO_NAMESPACES") != "1":
        box = _with_namespaces(Sandbox(switch_user=True, cgroups=cgroups, reason=reason))
        if box.hide_files:
            return box
        reason = box.reason
    box = Sandbox(switch_user=True, cgroups=cgroups, reason=reason)
    problem = _try(box)
    if problem:
        return Sandbox(reason=f"a sandboxed interpreter did not start ({problem})")
    return box


def _with_namespaces(box: Sandbox) -> Sandbox:
    """`box` with PID, mount and network namespaces if a worker starts in them; if not,
    `box` as it was, its reason saying why not."""
    try:
        box.network_holder = _start_network_holder()
        box.visible = _visible_paths()
        box.staging = tempfile.mkdtemp(prefix="llmlab-root-")
        os.chmod(box.staging, 0o755)
        box.hide_files = box.pid_namespace = True
        problem = _try(box)
    except (OSError, subprocess.SubprocessError) as error:
        problem = str(error)
    if problem:
        box.close()
        box.hide_files = box.pid_namespace = False
        box.reason = "; ".join(filter(None, [box.reason, f"no namespaces here ({problem})"]))
    return box


def _cgroups_work() -> tuple[bool, str]:
    """Can this machine give each worker a control group? (True, '') or (False, why not)."""
    try:
        Cgroup.create(WORKER_LIMITS).remove()
    except OSError as error:
        return False, f"no control groups here ({error})"
    return True, ""


def _try(box: Sandbox) -> str:
    """Start `python -c "import torch"` inside the sandbox; '' if it works, else why not."""
    scratch = Path(tempfile.mkdtemp(prefix="llmlab-try-"))
    uid = box.new_uid()
    box.prepare_scratch(scratch, uid)
    cgroup = None
    try:
        cgroup = box.new_cgroup()
        subprocess.run([sys.executable, "-I", "-c", "import torch"], check=True, timeout=120,
                       capture_output=True, cwd=scratch, env=worker_environment(scratch),
                       preexec_fn=functools.partial(box.enter, uid, scratch, cgroup))
    except subprocess.CalledProcessError as error:
        return (error.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    finally:
        if cgroup is not None:
            cgroup.remove()
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


def _fork_into_new_pid_namespace() -> None:
    """Fork into a new PID namespace: the child, PID 1 there, returns (and goes on to exec
    the worker); this process stays outside as its parent, holding nothing, and ends as the
    worker ends. When PID 1 dies the kernel kills every process of its namespace: nothing
    the worker starts (a double-forked daemon in its own session) outlives it."""
    _check(_libc().unshare(CLONE_NEWPID), "unshare pid")
    child = os.fork()
    if child == 0:
        return
    # Close every file: the trusted side must see the pipes close when the worker dies,
    # and subprocess must see the worker's exec (its error pipe closes on exec).
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        try:
            os.close(fd)
        except OSError:
            pass
    try:  # the kernel's memory killer should pick the worker, not this parent
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("-1000")
    except OSError:  # (needs CAP_SYS_RESOURCE; the worker, far larger, is picked anyway)
        pass
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if code < 0:  # killed by a signal: end the same way, so the exit status tells
        try:
            signal.signal(-code, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 128 - code)


def _enter_minimal_root(new_root: str, visible: tuple[str, ...], scratch: str,
                        uid: int | None) -> None:
    """A private mount namespace whose root shows only `visible` (system directories, the
    interpreter and its libraries, read-only), its own /proc, /dev and scratch directory;
    then chroot into it. Hidden tests, reference solutions, other copies of the repository,
    home directories and other workers' files simply do not exist there."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount private")
    _mount(b"tmpfs", new_root, b"tmpfs", 0, "size=1m,mode=755")
    for path in visible:
        target = new_root + path
        if os.path.islink(path):                     # /bin -> usr/bin on merged-/usr systems
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
            continue
        _bind(path, target)
        _mount(b"none", target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC)
    # proc of the worker's own PID namespace: the processes of other runs are not there
    _mount(b"proc", new_root + "/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount_private_dev(new_root + "/dev")
    _mount_scratch(scratch, new_root + scratch, uid)
    os.chroot(new_root)
    os.chdir(scratch)


def _mount_private_dev(dev: str) -> None:
    """A /dev of its own: a few harmless devices and the GPUs, bound from the machine's, and
    an empty /dev/shm with a size limit that goes away with the worker."""
    _mount(b"tmpfs", dev, b"tmpfs", MS_NOSUID, "size=1m,mode=755")
    for name in sorted(os.listdir("/dev")):
        if name in DEVICES or name.startswith("nvidia"):
            _bind("/dev/" + name, f"{dev}/{name}")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    _mount(b"tmpfs", dev + "/shm", b"tmpfs", MS_NOSUID | MS_NODEV, f"size={SHM_BYTES},mode=1777")


def _mount_scratch(scratch: str, target: str, uid: int | None) -> None:
    """The scratch directory in memory, with a quota: a tmpfs with copies of its files (the
    worker's own script, the student's module). What the worker prints still goes to the
    machine's scratch directory, through the file it was given as stdout (and no further
    than the file size limit)."""
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    _mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV,
           f"size={SCRATCH_BYTES},mode=700{owner}")
    for entry in os.scandir(scratch):
        if entry.is_file(follow_symlinks=False):
            copy = os.path.join(target, entry.name)
            shutil.copyfile(entry.path, copy)
            if uid is not None:
                os.chown(copy, uid, uid)


def _mount(source: bytes, target: str, kind: bytes | None, flags: int, options: str = "") -> None:
    """mount(2), creating the mount point (in the new root) as needed."""
    os.makedirs(target, exist_ok=True)
    _check(_libc().mount(source, target.encode(), kind, flags, options.encode() or None),
           f"mount {kind or source} on {target}")


def _bind(path: str, target: str) -> None:
    """Bind `path` (a directory or a file, such as a device) at `target`."""
    if os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _check(_libc().mount(path.encode(), target.encode(), None, MS_BIND | MS_REC, None),
           f"bind {path}")


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
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
