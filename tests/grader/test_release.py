"""Release, stubs and solutions: the student gets a fresh tree, never loses work."""

import ast
import subprocess
import sys

import pytest

from grader.authoring.release import (
    BEGIN,
    make_stub,
    out_of_sync,
    release,
    solutions,
    strip_markers,
)
from grader.course import ASSIGNMENTS, REPO


def signatures(source: str) -> dict[str, str]:
    """The API: public module-level functions and classes and their methods -> signature
    and docstring (functions nested inside a solution may go with it)."""
    found = {}

    def visit(body, prefix=""):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                args = ast.unparse(node.args) if isinstance(node, ast.FunctionDef) else ""
                found[prefix + node.name] = (args, ast.get_docstring(node))
            if isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")

    visit(ast.parse(source).body)
    return found


def test_released_stubs_are_in_sync_with_the_reference():
    """assignments/<name>/<file> is exactly what nbgrader makes from reference/."""
    assert out_of_sync() == []


@pytest.mark.parametrize("name", sorted(ASSIGNMENTS))
def test_stubs_keep_every_public_signature_and_docstring(name):
    """A stub keeps the API and its documentation; only solution regions go."""
    assignment = ASSIGNMENTS[name]
    reference = assignment.reference_path().read_text()
    stub = make_stub(reference, assignment)
    assert BEGIN not in stub and "raise NotImplementedError(\"Task " in stub
    assert signatures(stub) == signatures(reference)


def test_stub_regions_name_their_task():
    """Each cleared region tells the student which task it is and where to read."""
    assignment = ASSIGNMENTS["quantization"]
    stub = make_stub(assignment.reference_path().read_text(), assignment)
    assert 'raise NotImplementedError("Task 1.1: implement absmax_quantize (see README.md)")' \
        in stub
    assert "Task 1.3: implement quantize_rowwise" in stub


def test_release_writes_a_student_tree_without_secrets(tmp_path):
    """No reference solutions, no hidden tests, no instructor workflow, no history."""
    release(tmp_path)
    assert (tmp_path / "assignments/quantization/quantize.py").is_file()
    assert (tmp_path / "assignments/quantization/tests").is_dir()
    assert (tmp_path / "grader/cli.py").is_file()
    assert (tmp_path / ".github/workflows/autograde.yml").is_file()
    for secret in ("reference", "tests", ".git", ".github/workflows/instructor.yml", ".ci"):
        assert not (tmp_path / secret).exists(), f"{secret} must not be released"
    stubs = "\n".join(p.read_text() for p in (tmp_path / "assignments").rglob("*.py"))
    assert BEGIN not in stubs and "raise NotImplementedError" in stubs


def test_release_never_overwrites_a_students_file(tmp_path):
    """Re-releasing into a student's repository keeps their work, updates course files."""
    release(tmp_path)
    work = tmp_path / "assignments/quantization/quantize.py"
    work.write_text("# my solution\n")
    handout = tmp_path / "assignments/quantization/README.md"
    handout.write_text("stale handout")
    log = release(tmp_path)
    assert work.read_text() == "# my solution\n"
    assert "assignments/quantization/quantize.py" in log.kept
    assert handout.read_bytes() == (REPO / "assignments/quantization/README.md").read_bytes()


def test_solutions_are_published_beside_the_students_files(tmp_path):
    """solutions/<name>/<file> without markers; the student's own file is not touched."""
    release(tmp_path)
    work = tmp_path / "assignments/quantization/quantize.py"
    work.write_text("# my attempt\n")
    solutions(tmp_path)
    published = tmp_path / "solutions/quantization/quantize.py"
    reference = ASSIGNMENTS["quantization"].reference_path().read_text()
    assert published.read_text() == strip_markers(reference)
    assert work.read_text() == "# my attempt\n"


def test_release_works_without_the_notebooks_extra(tmp_path):
    """The committed stubs are released; nbgrader is needed only to regenerate them."""
    script = ("import sys\nclass Block:\n    def find_spec(self, name, *args):\n"
              "        if name.split('.')[0] in {'nbgrader', 'nbformat'}:\n"
              "            raise ImportError(name)\nsys.meta_path.insert(0, Block())\n"
              "from grader.cli import main\n"
              f"sys.exit(main(['release', {str(tmp_path / 'out')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stub = ASSIGNMENTS["quantization"].student_path(tmp_path / "out")
    assert stub.read_text() == ASSIGNMENTS["quantization"].student_path(REPO).read_text()


def test_the_release_has_every_notebook_without_answers_and_keeps_a_students(tmp_path):
    """Each assignment's concepts.ipynb is released as nbgrader made it (no answer, no
    hidden check); a student's own notebook is kept on a re-release."""
    from grader.authoring.notebooks import leaks
    from grader.kit.notebooks import read_notebook

    release(tmp_path)
    with_notebooks = [a for a in ASSIGNMENTS.values() if a.concepts]
    assert len(with_notebooks) == 6
    for a in with_notebooks:
        released = a.notebook_path(tmp_path)
        assert released.read_bytes() == a.notebook_path(REPO).read_bytes()
        assert leaks(read_notebook(a.reference_notebook()), read_notebook(released)) == []
    mine = ASSIGNMENTS["moe"].notebook_path(tmp_path)
    mine.write_text('{"my": "answers"}')
    log = release(tmp_path)
    assert mine.read_text() == '{"my": "answers"}'
    assert "assignments/moe/concepts.ipynb" in log.kept


def test_solutions_publish_the_answered_notebook(tmp_path):
    solutions(tmp_path)
    published = (tmp_path / "solutions/lora/concepts.ipynb").read_text()
    assert "BEGIN SOLUTION" not in published and "lora_params =" in published
