"""Grading as a pipeline: collect the submission -> run the suites -> report."""
