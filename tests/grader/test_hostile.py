"""Grading survives hostile submissions (tests/hostile/, README there).

Each hostile quantize.py is graded beside a correct solution of another
assignment: grading completes, results.json is valid and complete, every
quantization test scores 0 and says what happened, the other assignment keeps
full marks, and no forged file counts.
"""

import json
import re
import shutil
import socket
import threading
from pathlib import Path

import pytest

from grader.course import ASSIGNMENTS, REPO
from grader.isolation.sandbox import sandbox
from grader.pipeline.grade import GradeOptions, grade, stage

HOSTILE = sorted((REPO / "tests" / "hostile").glob("*.py"))
TARGET = ASSIGNMENTS["quantization"]
BYSTANDER = next((a for a in ASSIGNMENTS.values() if a.name != TARGET.name), None)


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


def submission_with(hostile: Path, tmp_path: Path, port: int) -> Path:
    root = tmp_path / "submission"
    target = TARGET.student_path(root)
    target.parent.mkdir(parents=True)
    target.write_text(hostile.read_text().replace("PORT = 0", f"PORT = {port}"))
    if BYSTANDER is not None:
        BYSTANDER.student_path(root).parent.mkdir(parents=True)
        shutil.copyfile(BYSTANDER.reference_path(), BYSTANDER.student_path(root))
    return root


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda p: p.stem)
def test_a_hostile_submission_scores_zero_and_grading_goes_on(hostile, tmp_path):
    needs = header(hostile, "Needs")
    if needs == "root sandbox" and not sandbox().switch_user:
        pytest.skip(f"defended only when the grader runs as root: {sandbox().describe()}")
    if needs == "network namespace" and sandbox().network_holder is None:
        pytest.skip(f"no network namespace here: {sandbox().describe()['network']}")
    listener = Listener()
    root = submission_with(hostile, tmp_path, listener.port)
    output = tmp_path / "out" / "results.json"
    output.parent.mkdir()
    assignments = [TARGET] + ([BYSTANDER] if BYSTANDER else [])
    staged = stage(root, assignments)
    try:
        report = grade(staged, GradeOptions(assignments, suite="public", output=output),
                       log=lambda *_: None)
    finally:
        staged.cleanup()
        listener.close()

    results = json.loads(output.read_text())
    assert sorted(p.name for p in output.parent.iterdir()) == ["results.json"]
    assert results["tests"] and all(t["status"] in ("passed", "failed") for t in results["tests"])
    assert "UNGRADABLE" not in json.dumps(results), "the submission's doing must not be ungradable"
    attacked = [t for t in results["tests"] if t["name"].startswith(f"{TARGET.name}/")]
    assert attacked and all(t["score"] == 0 for t in attacked), "a hostile submission scored"
    expect = re.compile(header(hostile, "Expect"))
    assert any(expect.search(t["output"]) for t in attacked), \
        f"no test says {expect.pattern!r}: {[t['output'][:300] for t in attacked][:2]}"
    assert "def test_" not in json.dumps(results), "hidden test source leaked into the output"
    assert listener.connections == 0, "the worker reached the grader's network"
    if BYSTANDER is not None:
        bystander = [t for t in report.tests.values() if t.assignment == BYSTANDER.name]
        assert bystander and all(t.status == "passed" for t in bystander)
