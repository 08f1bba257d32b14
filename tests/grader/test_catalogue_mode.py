"""Catalogue mode (grader/authoring/catalogue.py): many wrong solutions, one pytest session,
each graded alone, in its own fresh worker processes."""

import json

from grader.course import ASSIGNMENTS
from grader.pipeline.run import run_suite

QUANTIZATION = ASSIGNMENTS["quantization"]
TESTS = QUANTIZATION.hidden_tests() / "test_absmax_dequantize.py"

# Appended to the reference, these redefinitions replace its absmax_dequantize: the first
# fails only on all-zero 2x3 codes (one hidden test, not the first, uses them), the second
# always. Both say which process ran them: a token drawn once per process (every worker
# is pid 1 in its own namespace), kept in its environment, which a re-import would not reset.
FAILS_ON_ZERO_CODES = '''
import os as _os

_right = absmax_dequantize


def absmax_dequantize(q, scale):
    if q.numel() == 6 and not q.any():
        token = _os.environ.setdefault("PROCESS_TOKEN", _os.urandom(8).hex())
        raise RuntimeError(f"process {token}")
    return _right(q, scale)
'''
ALWAYS_FAILS = '''
import os as _os


def absmax_dequantize(q, scale):
    token = _os.environ.setdefault("PROCESS_TOKEN", _os.urandom(8).hex())
    raise RuntimeError(f"process {token}")
'''


def grade(mutants, tmp_path) -> list[dict]:
    out = tmp_path / "catalogue.json"
    options = ["-p", "grader.authoring.catalogue", "--catalogue-out", str(out)]
    for mutant in mutants:
        options += ["--mutants", str(mutant)]
    run = run_suite(QUANTIZATION, [TESTS], submission=None, isolate=True, profile="grading",
                    on_record=lambda record: None, budget_s=300, extra_args=options)
    assert run.exit_code == 0, run.output[-3000:]
    return json.loads(out.read_text())


def test_each_mutant_is_graded_alone_in_fresh_workers(tmp_path):
    """Mutants are named in their results, in the order given; each runs in its own worker
    process; the test that caught one is tried first for the next; the reference survives."""
    reference = QUANTIZATION.reference_path().read_text()
    late, early, same = (tmp_path / f"{name}.py" for name in ("late", "early", "same"))
    late.write_text(reference + FAILS_ON_ZERO_CODES)
    early.write_text(reference + ALWAYS_FAILS)
    same.write_text(reference)

    late_result, early_result, same_result = results = grade([late, early, same], tmp_path)

    assert [r["mutant"] for r in results] == [str(late), str(early), str(same)]
    assert [r["status"] for r in results] == ["failed", "failed", "survived"]
    tokens = {r["message"].split("process ")[1].split()[0] for r in (late_result, early_result)}
    assert len(tokens) == 2, f"both mutants ran in one worker process: {results}"
    assert late_result["tests_run"] > 1 and early_result["tests_run"] == 1
    assert early_result["caught_by"] == late_result["caught_by"]
    assert same_result["caught_by"] is None and same_result["tests_run"] > 1
