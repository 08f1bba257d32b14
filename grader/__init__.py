"""LLM Systems Lab grader: test, grade, validate, release.

Pipeline of `grader grade`: collect the submission (submission.py) -> run each
assignment's suite in its own pytest process, student code in a worker
(runner.py, worker.py) -> write results.json incrementally (results.py).
"""

__version__ = "0.1.0"
