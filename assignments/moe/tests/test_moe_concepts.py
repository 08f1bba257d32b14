"""Your concept notebook, concepts.ipynb, run as grading runs it: each answer passes the
checks its test cell shows. Worth 0 points: the values are checked in official grading."""

from grader.kit.notebooks import format_test

test_answer_passes_the_notebooks_own_checks = format_test("moe")
