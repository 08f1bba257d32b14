"""The README's two commands come first, and CI runs exactly those."""

from grader.course import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    head = text.split("---")[0]
    return [line.strip() for line in head.splitlines() if line.startswith("    ")]


def test_readme_starts_with_install_then_test_command():
    """The first two indented commands: one installs everything, one runs the tests."""
    install, test = readme_commands()[:2]
    assert "pip install" in install and ".venv" in install
    assert "pytest" in test


def test_ci_runs_the_readme_commands_exactly():
    """.ci/run's commands are the README's, character for character."""
    script = (REPO / ".ci" / "run").read_text()
    commands = [line for line in script.splitlines()
                if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == readme_commands()[:2]

