"""The questions of the concept notebook, assignments/flash_attention/concepts.ipynb: each is
checked here on the value the student's notebook computed (grader/kit/notebooks.py)."""

from grader.kit.notebooks import concept_test

test_concept_question = concept_test("flash_attention")
