"""Replies from workers are bounded before they are read (grader/isolation/wire.py).

A worker is student code: it can write any bytes on its channel. Each case below is a
reply a motivated student could send, as a real worker sends it; each must fail the
call in plain words while the trusted process (this one) grows by less than GROWTH_MIB,
however large the reply claims to be, and the next call must work.
"""

import ctypes
import gc
import textwrap

import pytest
import torch

from grader.isolation.errors import StudentCrash
from grader.isolation.proxies import StudentProxy
from grader.isolation.worker import WorkerConfig, WorkerProcess
from grader.kit import notebooks
from grader.kit.probes import run_probe

GROWTH_MIB = 50

FORGER = '''
import os, struct, sys, time
import torch

FD = int(sys.argv[2])  # the worker's reply channel (its command line says which)
NAME = b"archive/data.pkl"
ZIP_ENTRY = b"PK\\x03\\x04" + bytes(22) + struct.pack("<HH", len(NAME), 0) + NAME


def _write(data):
    view = memoryview(data)
    while view:
        view = view[os.write(FD, view):]


def _send(declared, head):
    """A frame that declares `declared` bytes: `head`, then filler, streamed."""
    _write(struct.pack("<Q", declared) + head)
    chunk, sent = b"x" * (1 << 20), len(head)
    while sent < declared:  # the trusted side may stop reading at any point
        _write(chunk[:declared - sent])
        sent += min(len(chunk), declared - sent)
    time.sleep(60)  # never reply again: the trusted side ends this worker


def ping():
    return 1


def frame_of_4_gib():
    _send(4 << 30, ZIP_ENTRY)


def message_of_500_mib():  # an error reply whose message is declared 500 MiB long
    _send((500 << 20) + 200, ZIP_ENTRY + b"\\x80\\x02X" + struct.pack("<I", 500 << 20))


def millions_of_items():   # torch.save of 2 million ints, under the 1 GiB frame limit
    import io
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": list(range(1000, 2_001_000))}, buffer)
    _send(len(buffer.getvalue()), buffer.getvalue())


def huge_shape():          # 2^29 floats (2 GiB once copied) held in one float's storage
    import _wire
    _wire.write_frame(FD, {"ok": True, "value": torch.zeros(1).expand(1 << 29)})
    time.sleep(60)
'''


def memory_peak_mib() -> float:
    """This process's peak resident memory since the last reset, in MiB."""
    with open("/proc/self/status") as status:
        line = next(entry for entry in status if entry.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def grows_by_mib(action) -> float:
    """How much this process's resident memory peaks above its current level while
    `action()` runs (the kernel's peak is reset first: /proc/self/clear_refs), after
    memory freed earlier is handed back (else reusing it would not show)."""
    gc.collect()
    ctypes.CDLL(None).malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = memory_peak_mib()
    action()
    return memory_peak_mib() - before


@pytest.fixture(scope="module")
def forger(tmp_path_factory):
    path = tmp_path_factory.mktemp("forger") / "student_module.py"
    path.write_text(FORGER)
    worker = WorkerProcess(WorkerConfig(scratch_files={"student_module.py": path},
                                        module="student_module", call_timeout_s=60))
    student = StudentProxy(worker, "student_module")
    assert student.ping() == 1  # started before anything is measured
    yield student
    worker.stop()


def many(module):
    return module.millions_of_items()


def refused(call, says: str):
    def action():
        with pytest.raises(StudentCrash, match=says):
            call()
    return action


@pytest.mark.parametrize("call, says", [
    (lambda s: s.frame_of_4_gib(), "a reply of 4294967296 bytes, more than"),
    (lambda s: s.message_of_500_mib(), "a string of 524288000 bytes"),
    (lambda s: run_probe(s, many), "more than 1000000 pickle opcodes"),
    (lambda s: s.huge_shape(), "more than the 1073741824 bytes"),
], ids=["frame_of_4_gib", "message_of_500_mib", "probe_of_2_million_items", "huge_shape"])
def test_a_reply_that_claims_gibs_is_refused_before_it_is_taken_in(forger, call, says):
    """The call fails saying what was refused; this process stays within GROWTH_MIB."""
    grown = grows_by_mib(refused(lambda: call(forger), says))
    assert grown < GROWTH_MIB, f"the trusted process grew by {grown:.0f} MiB"
    forger._worker.new_test()
    assert forger.ping() == 1  # a fresh worker: grading goes on (and the next case uses it)


# ------------------------------------------------------------ notebook answers --
ANSWERS = {
    "a_200_mib_string": '"x" * (200 << 20)',
    "a_huge_int": "10 ** 100_000",
    "a_deeply_nested_list": "functools.reduce(lambda v, _: [v], range(200), 0)",
}
BYPASS = "import __main__\n__main__.check_sendable = lambda request, reply: None\n"


def answered(value: str, bypass: bool) -> list:
    """A notebook run's plan: one cell assigns `answer`, one question reads it (the
    worker-side courtesy check removed first when `bypass`)."""
    source = ("import functools\n" + (BYPASS if bypass else "") + f"answer = {value}\n")
    return [notebooks.Run("cell 1", source), notebooks.Capture("q1", ("answer",)),
            notebooks.Run("cell 2", "after = 1"), notebooks.Capture("q2", ("after",))]


@pytest.mark.parametrize("bypass", [False, True], ids=["as_sent", "check_removed"])
@pytest.mark.parametrize("answer", list(ANSWERS))
def test_an_oversized_notebook_answer_is_refused_before_it_is_taken_in(tmp_path, answer,
                                                                        bypass):
    """The question fails in words, this process stays within GROWTH_MIB; an honest
    worker refuses the answer itself and the notebook goes on to the next question."""
    worker = WorkerProcess(WorkerConfig(scratch_files={}, module=None, call_timeout_s=60))
    question = notebooks.Question("q1", 1.0, textwrap.dedent("assert answer == 1"),
                                  ("answer",))
    runs = []
    try:
        worker.request({"op": "cell", "source": "started = 1", "name": "<warm>"})
        grown = grows_by_mib(lambda: runs.append(
            notebooks.run_notebook(worker, answered(ANSWERS[answer], bypass))))
    finally:
        worker.stop()
    assert grown < GROWTH_MIB, f"the trusted process grew by {grown:.0f} MiB"
    with pytest.raises(AssertionError) as failure:
        runs[0].answers_for(question)
    says = "malformed reply" if bypass else "your answer could not be read: ValueError"
    assert says in str(failure.value)
    if not bypass:
        assert runs[0].answers["q2"] == {"after": 1}


def test_a_plain_reply_within_the_budget_still_crosses(forger):
    """The bounds leave ordinary replies alone: a tensor, numbers and text."""
    assert forger.ping() == 1
    value = run_probe(forger, plain_values)
    assert value[0].shape == (256, 256) and value[1:] == [2 ** 100, "é" * 1000]


def plain_values(module):
    return [torch.ones(256, 256), 2 ** 100, "é" * 1000]
