"""The worker seam: student code runs elsewhere, and whatever it does, the
trusted side gets plain data or a clear, typed failure."""

import os
import textwrap
import time

import pytest
import torch

from grader.course import REPO
from grader.isolation.errors import GraderFault, StudentCrash, StudentError
from grader.isolation.proxies import StudentProxy
from grader.isolation.sandbox import sandbox
from grader.isolation.worker import WorkerConfig, WorkerProcess


def make_student(tmp_path, source: str, timeout_s: float = 20.0):
    path = tmp_path / "student_module.py"
    path.write_text(textwrap.dedent(source))
    worker = WorkerProcess(WorkerConfig(scratch_files={"student_module.py": path},
                                        module="student_module", call_timeout_s=timeout_s))
    return worker, StudentProxy(worker, "student_module")


@pytest.fixture
def student_factory(tmp_path):
    workers = []

    def factory(source, **kwargs):
        worker, proxy = make_student(tmp_path, source, **kwargs)
        workers.append(worker)
        return proxy

    yield factory
    for worker in workers:
        worker.stop()


def test_tensors_and_plain_values_cross_the_boundary(student_factory):
    student = student_factory("""
        import torch
        def double(x, factor=2):
            return x * factor, {"shape": tuple(x.shape), "dtype": x.dtype}
    """)
    result, info = student.double(torch.arange(6).reshape(2, 3), factor=3)
    assert type(result) is torch.Tensor and result.tolist() == [[0, 3, 6], [9, 12, 15]]
    assert info == {"shape": (2, 3), "dtype": torch.int64}


def test_builtin_exceptions_keep_their_type_and_message(student_factory):
    student = student_factory("""
        def check(x):
            raise ValueError("x must be positive")
    """)
    with pytest.raises(ValueError, match="x must be positive") as info:
        student.check(1)
    assert "student_module.py" in info.value.student_traceback


def test_other_exceptions_become_student_errors(student_factory):
    student = student_factory("""
        class Oops(ValueError):
            pass
        def f():
            raise Oops("custom")
    """)
    with pytest.raises(StudentError, match="Oops: custom"):
        student.f()


def test_a_crash_at_import_is_reported_and_not_retried(student_factory):
    student = student_factory("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(StudentCrash, match="crashed at import: RuntimeError: broken on purpose"):
        student.anything()
    with pytest.raises(StudentCrash, match="crashed at import"):
        student.anything()
    assert student._worker.starts == 1


def test_exiting_at_import_is_a_crash_not_a_pass(student_factory):
    student = student_factory("import os\nos._exit(0)\n")
    with pytest.raises(StudentCrash, match="exited with code 0 while importing"):
        student.f()


def test_a_hanging_call_times_out_and_the_worker_restarts(student_factory):
    student = student_factory("""
        def hang():
            while True:
                pass
        def ok():
            return 1
    """, timeout_s=1.0)
    with pytest.raises(StudentCrash, match="timed out after 1 s"):
        student.hang()
    with pytest.raises(StudentCrash, match="timed out after 1 s"):
        student.ok()  # the rest of this test fails fast, without another timeout
    student._worker.new_test()
    assert student.ok() == 1
    assert student._worker.starts == 2


def test_a_tensor_subclass_is_refused(student_factory):
    student = student_factory("""
        import torch
        class Liar(torch.Tensor):
            def __eq__(self, other):
                return True
        def f():
            return torch.zeros(2).as_subclass(Liar)
    """)
    with pytest.raises(TypeError, match="subclass"):
        student.f()


def test_objects_stay_in_the_worker_behind_handles(student_factory):
    student = student_factory("""
        class Counter:
            def __init__(self, start):
                self.count = start
            def add(self, n):
                self.count += n
                return self.count
    """)
    counter = student.Counter(5)
    assert counter.add(2) == 7
    assert counter.count == 7
    assert "Counter" in repr(counter)


def test_the_worker_cannot_import_the_grader_or_reference(student_factory):
    student = student_factory("""
        import importlib, os
        def probe():
            found = {}
            for name in ("grader", "reference", "tests"):
                try:
                    importlib.import_module(name)
                    found[name] = True
                except ImportError:
                    found[name] = False
            return found, sorted(os.environ)
    """)
    found, environment = student.probe()
    assert found == {"grader": False, "reference": False, "tests": False}
    assert "HOME" in environment and not any("SECRET" in k or "TOKEN" in k for k in environment)


def test_a_worker_that_cannot_start_is_the_graders_fault(tmp_path, monkeypatch):
    worker, student = make_student(tmp_path, "def f():\n    return 1\n")
    monkeypatch.setattr("grader.isolation.worker.WORKER_SCRIPT", tmp_path / "student_module.py")
    with pytest.raises(GraderFault):
        student.f()
    worker.stop()


def test_a_function_that_hung_twice_is_not_run_again(student_factory):
    student = student_factory("""
        def hang():
            while True:
                pass
        def ok():
            return 1
    """, timeout_s=1.0)
    for _ in range(2):
        student._worker.new_test()
        with pytest.raises(StudentCrash, match="timed out after 1 s"):
            student.hang()
    student._worker.new_test()
    started = time.monotonic()
    with pytest.raises(StudentCrash, match="not run again: hang .* 2 earlier tests"):
        student.hang()
    assert time.monotonic() - started < 0.5
    assert student.ok() == 1  # other functions still run


def test_a_memory_bomb_is_stopped_with_a_plain_message(student_factory, monkeypatch):
    monkeypatch.setattr("grader.isolation.worker.RESIDENT_LIMIT_BYTES", 300 << 20)
    student = student_factory("""
        import time
        def bomb():
            chunks = []
            for _ in range(40):                  # bounded: 40 x 32 MiB
                chunks.append(bytearray(32 << 20))
                time.sleep(0.05)
            time.sleep(10)
    """)
    with pytest.raises(StudentCrash, match="used more than 0.29.* GiB of memory"):
        student.bomb()


needs_root_sandbox = pytest.mark.skipif(
    not sandbox().switch_user, reason=f"the sandbox cannot switch users here "
                                      f"({sandbox().describe()['user']})")


@needs_root_sandbox
def test_the_worker_runs_as_another_user_and_cannot_signal_the_grader(student_factory):
    """Another uid may not signal it; in a PID namespace the grader has no pid at all."""
    student = student_factory("""
        import os, signal
        def attack(grader):
            os.kill(grader, signal.SIGKILL)
        def whoami():
            return os.getuid()
    """)
    assert student.whoami() != os.getuid()
    with pytest.raises((PermissionError, ProcessLookupError)):
        student.attack(os.getpid())


@pytest.mark.skipif(not sandbox().hide_files, reason="no mount namespaces here")
def test_the_worker_cannot_read_hidden_tests_or_reference_files(student_factory):
    student = student_factory(f"""
        import os
        def listing():
            seen = {{}}
            for name in {[n for n in ("reference", "tests", ".git") if (REPO / n).is_dir()]!r}:
                try:
                    seen[name] = os.listdir(os.path.join({str(REPO)!r}, name))
                except OSError as error:
                    seen[name] = type(error).__name__
            return seen
    """)
    assert all(seen in ([], "PermissionError", "FileNotFoundError")
               for seen in student.listing().values())


@pytest.mark.skipif(sandbox().network_holder is None, reason="no network namespaces here")
def test_the_worker_has_loopback_but_no_other_network(student_factory):
    student = student_factory("""
        import socket
        def interfaces():
            return sorted(name for _, name in socket.if_nameindex())
    """)
    assert student.interfaces() == ["lo"]


@pytest.mark.skipif(not sandbox().hide_files, reason="no private scratch directory here")
def test_the_scratch_directory_has_a_quota(student_factory):
    """Files below the size limit each, but more of them than the scratch tmpfs holds."""
    student = student_factory("""
        def fill():
            for n in range(8):                   # bounded: 8 x 48 MiB
                with open(f"fill{n}.bin", "wb") as f:
                    f.write(b"x" * (48 << 20))
    """)
    with pytest.raises(OSError, match="No space left on device"):
        student.fill()


def test_what_the_student_printed_is_shown_beside_the_failure_as_is(student_factory):
    from grader.kit.describe import plain_failure

    student = student_factory("""
        import os
        def noisy():
            print("step 1 ok")
            print("==== 99 passed ====")
            raise ValueError("bad shape")
        def dies():
            print("about to exit", flush=True)
            os._exit(3)
    """)
    with pytest.raises(ValueError) as info:
        student.noisy()
    message = plain_failure(info.value)
    assert "Your code printed" in message and "  | step 1 ok" in message
    assert "  | ==== 99 passed ====" in message  # shown, labelled, never parsed
    student._worker.new_test()
    with pytest.raises(StudentCrash) as crash:
        student.dies()
    assert "about to exit" in crash.value.student_output
