"""Root conftest: every test run (plain pytest, `grader test`, `grader grade`)
loads the course's pytest plugins: grader/kit/plugin.py (the `student`
fixture) and grader/kit/ranks.py (the `ranks` fixture of distributed
assignments)."""

pytest_plugins = ["grader.kit.plugin", "grader.kit.ranks"]
