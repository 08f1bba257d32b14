"""The course's assignments: names, student-owned files, tasks. One table.

Everything else (tests, provided model code, handouts) is found by convention:
    assignments/<name>/<student_file>     the student's copy (stub in the release)
    assignments/<name>/tests/             public tests
    reference/<name>/<student_file>       the solution, with nbgrader markers
    tests/<name>/                         the hidden suite
    tests/mutants/<name>/                 wrong solutions the hidden suite must catch
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Assignment:
    name: str
    student_file: str
    tasks: dict[str, str]                        # function or class -> "1.1"
    titles: dict[str, str] = field(default_factory=dict)  # "1.1" -> title
    call_timeout_s: float = 60.0

    @property
    def module(self) -> str:
        return Path(self.student_file).stem

    def student_path(self, root: Path) -> Path:
        """Where a student-shaped tree (a submission, a release) keeps the student's file."""
        return root / "assignments" / self.name / self.student_file

    def reference_path(self, root: Path = REPO) -> Path:
        return root / "reference" / self.name / self.student_file

    def provided_files(self, root: Path = REPO) -> list[Path]:
        """Trusted code the student's module may import (e.g. a provided model)."""
        folder = root / "assignments" / self.name
        return sorted(p for p in folder.glob("*.py") if p.name != self.student_file)

    def public_tests(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "tests"

    def hidden_tests(self, root: Path = REPO) -> Path:
        return root / "tests" / self.name

    def handout(self, root: Path = REPO) -> Path:
        return root / "assignments" / self.name / "README.md"

    def task_of(self, function: str) -> str | None:
        return self.tasks.get(function)


ASSIGNMENTS: dict[str, Assignment] = {
    a.name: a
    for a in [
        Assignment(
            "quantization", "quantize.py",
            tasks={"absmax_quantize": "1.1", "absmax_dequantize": "1.2",
                   "quantize_rowwise": "1.3"},
            titles={"1.1": "absmax_quantize", "1.2": "absmax_dequantize",
                    "1.3": "quantize_rowwise (Triton kernel)"},
            call_timeout_s=20.0,  # correct calls take milliseconds, interpreted kernels < 2 s
        ),
    ]
}


def get(name: str) -> Assignment:
    try:
        return ASSIGNMENTS[name]
    except KeyError:
        known = ", ".join(ASSIGNMENTS)
        raise ValueError(f"unknown assignment {name!r}; known: {known}") from None


def assignment_of_path(path: Path) -> Assignment | None:
    """The assignment a test file belongs to: tests/<name>/... or assignments/<name>/tests/..."""
    parts = Path(path).resolve().parts
    for i, part in enumerate(parts[:-1]):
        if part in ("tests", "assignments") and parts[i + 1] in ASSIGNMENTS:
            return ASSIGNMENTS[parts[i + 1]]
    return None
