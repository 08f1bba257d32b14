"""Root conftest: every test run (plain pytest, `grader test`, `grader grade`)
loads the course's pytest plugin, which defines the `student` fixture."""

pytest_plugins = ["grader.kit.plugin"]
