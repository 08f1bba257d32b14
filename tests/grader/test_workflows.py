"""The GitHub Actions workflows parse, and every grader command they run exists."""

import re

import pytest
import yaml

from grader.cli import _parser
from grader.course import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
COMMAND = re.compile(r"\bgrader ((?:class )?[a-z]+)")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_workflow_parses_and_names_only_real_grader_commands(path):
    workflow = yaml.safe_load(path.read_text())
    assert workflow["jobs"], f"{path.name}: no jobs"
    scripts = [step.get("run", "") for job in workflow["jobs"].values()
               for step in job.get("steps", [])]
    known = _parser()._subparsers._group_actions[0].choices
    classroom = known["class"]._subparsers._group_actions[0].choices
    for command in COMMAND.findall("\n".join(scripts)):
        words = command.split()
        assert words[0] in known, f"{path.name}: no command `grader {command}`"
        if words[0] == "class":
            assert words[1] in classroom, f"{path.name}: no command `grader {command}`"
