"""The repository passes its own linter (ruff, configured in pyproject.toml)."""

import importlib.util
import subprocess
import sys

import pytest

from grader.course import REPO


def test_ruff_finds_nothing():
    """Style and common bugs: ruff check over the whole repository."""
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it comes with the [dev] extra)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO),
                             "--output-format", "concise"], capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
