"""Grading survives hostile submissions (tests/hostile/, README there).

Each hostile student file is graded beside a correct solution of another
assignment: grading completes, results.json is valid and complete, every
attacked test scores 0 and says what happened, the other assignment keeps
full marks, no forged file counts, and nothing of the workers is left once
grading returns (no process, no scratch directory, no file in /dev/shm). A
file's header says which assignment it attacks (`Target:`, default
quantization), with which suite (`Suite:`, default public) and, with
`Attacks:`, which of that assignment's tests (a regular expression on the test
name; default all of them); `Tasks:` grades only those tasks' tests (default all).
"""

import json
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from grader.course import ASSIGNMENTS, REPO
from grader.isolation.sandbox import WORKER_UID_BASE, sandbox
from grader.pipeline.grade import GradeOptions, grade, stage

HOSTILE = sorted((REPO / "tests" / "hostile").glob("*.py"))


def target_of(hostile: Path):
    return ASSIGNMENTS[header(hostile, "Target") or "quantization"]


def bystander_of(target):
    """Another assignment, graded correctly beside the attack: one whose suites are fast."""
    fast_first = sorted(ASSIGNMENTS.values(), key=lambda a: (a.name not in ("moe", "lora"),
                                                             a.number))
    return next((a for a in fast_first if a.name != target.name), None)


def tasks_of(hostile: Path) -> tuple[str, ...]:
    """The tasks graded (`Tasks:`, default all), and then every task of the bystander."""
    tasks = tuple((header(hostile, "Tasks") or "").split())
    bystander = bystander_of(target_of(hostile))
    return tasks + tuple(t.id for t in bystander.tasks) if tasks and bystander else tasks


def header(path: Path, field: str) -> str | None:
    match = re.search(rf"^{field}: (.*)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else None


class Listener:
    """A TCP server on the grader's loopback that counts who connects."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self):
        self.server.close()


class Leftovers:
    """What the workers of a grading run could leave behind on the machine: processes,
    scratch directories, files in /dev/shm. The grading processes make their workers'
    scratch directories in a temporary directory of this test's (TMPDIR), and every
    worker has its scratch directory in its command line and environment, which its
    children inherit."""

    def __init__(self, monkeypatch):
        self.tmp = tempfile.mkdtemp(prefix="llmlab-hostile-")
        os.chmod(self.tmp, 0o755)                  # workers of another uid pass through
        monkeypatch.setenv("TMPDIR", self.tmp)
        self.shm_before = set(os.listdir("/dev/shm"))

    def found(self) -> list[str]:
        left = [f"scratch {path}" for path in Path(self.tmp).glob("llmlab-worker-*")]
        mark = f"{self.tmp}/llmlab-worker-".encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                seen = (Path(f"/proc/{pid}/cmdline").read_bytes()
                        + Path(f"/proc/{pid}/environ").read_bytes())
            except OSError:
                continue
            if mark in seen:
                left.append(f"process {pid}: {seen[:200]!r}")
        for name in set(os.listdir("/dev/shm")) - self.shm_before:  # a worker's, or a hostile's
            try:
                if (os.stat(f"/dev/shm/{name}").st_uid >= WORKER_UID_BASE
                        or name.startswith("llmlab-hostile")):
                    left.append(f"/dev/shm/{name}")
            except OSError:
                pass
        return left

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def submission_with(hostile: Path, tmp_path: Path, port: int) -> Path:
    root = tmp_path / "submission"
    target, bystander = target_of(hostile), bystander_of(target_of(hostile))
    path = target.student_path(root)
    path.parent.mkdir(parents=True)
    link = header(hostile, "Link")  # "FOLDER=TARGET": the attack is a link, not a file
    if link:
        folder, _, pointee = link.partition("=")
        shutil.rmtree(root / folder)
        (root / folder).symlink_to(pointee)
    else:
        path.write_text(hostile.read_text().replace("PORT = 0", f"PORT = {port}"))
    if bystander is not None:
        bystander.student_path(root).parent.mkdir(parents=True)
        shutil.copyfile(bystander.reference_path(), bystander.student_path(root))
        if bystander.concepts:  # its notebook too: the bystander earns everything
            shutil.copyfile(bystander.reference_notebook(), bystander.notebook_path(root))
    return root


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda p: p.stem)
def test_a_hostile_submission_scores_zero_and_grading_goes_on(hostile, tmp_path, monkeypatch):
    needs = header(hostile, "Needs")
    if needs == "root sandbox" and not sandbox().switch_user:
        pytest.skip(f"defended only when the grader runs as root: {sandbox().describe()}")
    if needs == "network namespace" and sandbox().network_holder is None:
        pytest.skip(f"no network namespace here: {sandbox().describe()['network']}")
    listener = Listener()
    root = submission_with(hostile, tmp_path, listener.port)
    output = tmp_path / "out" / "results.json"
    output.parent.mkdir()
    target, bystander = target_of(hostile), bystander_of(target_of(hostile))
    assignments = [target] + ([bystander] if bystander else [])
    suite = header(hostile, "Suite") or "public"
    staged = stage(root, assignments)
    leftovers = Leftovers(monkeypatch)
    try:
        report = grade(staged, GradeOptions(assignments, suite=suite, output=output,
                                            tasks=tasks_of(hostile)), log=lambda *_: None)
        left = leftovers.found()
    finally:
        staged.cleanup()
        listener.close()
        leftovers.close()

    results = json.loads(output.read_text())
    assert sorted(p.name for p in output.parent.iterdir()) == ["results.json"]
    flag = header(hostile, "Flags")  # what extra_data.review must show a person
    if flag:
        flags = results["extra_data"]["review"].get(target.name, [])
        assert any(re.search(flag, f) for f in flags), f"review flags {flags} lack {flag!r}"
    assert results["tests"] and all(t["status"] in ("passed", "failed") for t in results["tests"])
    ungradable = [(t["name"], t["output"][:500]) for t in results["tests"]
                  if "UNGRADABLE" in t["output"]]
    assert not ungradable and "UNGRADABLE" not in json.dumps(results), \
        f"the submission's doing must not be ungradable: {ungradable[:2] or results['output']}"
    attacks = re.compile(header(hostile, "Attacks") or ".")
    attacked = [t for t in results["tests"]
                if t["name"].startswith(f"{target.name}/") and attacks.search(t["name"])]
    assert attacked and all(t["score"] == 0 for t in attacked), "a hostile submission scored"
    expect = re.compile(header(hostile, "Expect"))
    assert any(expect.search(t["output"]) for t in attacked), \
        f"no test says {expect.pattern!r}: {[t['output'][:300] for t in attacked][:2]}"
    assert "def test_" not in json.dumps(results), "hidden test source leaked into the output"
    assert listener.connections == 0, "the worker reached the grader's network"
    assert not left, f"the workers left behind: {left}"
    if bystander is not None:
        others = [t for t in report.tests.values()   # skipped on this machine: not graded
                  if t.assignment == bystander.name and t.status != "skipped"]
        assert others and all(t.status == "passed" for t in others)
