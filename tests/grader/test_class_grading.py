"""Grading a class end to end on local repositories: the freeze's commits, the late
policy, unreachable and force-pushed repositories, shards, merge and a regrade.

One class is frozen and graded once (module fixture); the tests read its outputs.
The public quantization suite keeps each grading short."""

import csv
import json

import pytest

from grader.cli import main
from tests.grader.classroom_repos import (
    QUANTIZATION,
    commit,
    force_push_away,
    git,
    student_repository,
)

DEADLINES = """
[late]
policy = "penalty"
per_day = 0.1
cap = 0.5
window_days = 5

[deadlines]
quantization = "2026-10-02T23:59:00Z"

[extensions.ada]
quantization = "2026-10-04T23:59:00Z"
"""
STABLE = ["student", "assignment", "score", "max_score", "raw_score", "days_late", "penalty",
          "status", "repository", "commit", "seen_at", "grader_commit"]


def freeze_at(roster, when):
    return main(["class", "freeze", str(roster), "--now", when])


def grade(roster, out, *extra):
    return main(["class", "grade", str(roster), "--out", str(out), "--suite", "public",
                 "--assignment", "quantization", *extra])


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """ada: an extension, correct at hers; bob: a stub at the deadline, correct 30 h late;
    cy: no repository; dee: force-pushed away after the freeze."""
    root = tmp_path_factory.mktemp("class")
    reference = QUANTIZATION.reference_path()
    ada = student_repository(root, "ada", None)
    bob = student_repository(root, "bob", None)
    dee = student_repository(root, "dee", reference)
    roster = root / "roster.csv"
    roster.write_text("student,repository,section\n"
                      f"ada,{ada},A\nbob,{bob},B\ncy,{root / 'cy'},A\ndee,{dee},B\n")
    (root / "deadlines.toml").write_text(DEADLINES)
    assert freeze_at(roster, "2026-10-03T00:05:00Z") == 1          # cy cannot be read
    commit(bob, QUANTIZATION.student_path(bob), reference, "late")
    commit(ada, QUANTIZATION.student_path(ada), reference, "in her extension")
    assert freeze_at(roster, "2026-10-04T06:00:00Z") == 1          # bob's late commit
    assert freeze_at(roster, "2026-10-05T00:05:00Z") == 1          # ada's extension
    force_push_away(dee)
    assert grade(roster, root / "whole", "--jobs", "2") == 0
    return root, roster


def gradebook(folder):
    return {(r["student"], r["assignment"]): r for r in csv.DictReader(open(folder /
                                                                            "gradebook.csv"))}


def test_each_student_gets_the_commit_and_penalty_the_policy_says(klass):
    root, _ = klass
    book = gradebook(root / "whole")
    full = float(book[("ada", "quantization")]["max_score"])
    assert full > 0
    ada, bob = book[("ada", "quantization")], book[("bob", "quantization")]
    assert (float(ada["score"]), ada["days_late"], ada["status"]) == (full, "0", "graded")
    assert (float(bob["raw_score"]), bob["days_late"], float(bob["penalty"])) == (full, "2", 0.2)
    assert float(bob["score"]) == pytest.approx(0.8 * full)


def test_rows_that_cannot_be_graded_say_why_and_keep_the_full_maximum(klass):
    root, _ = klass
    book = gradebook(root / "whole")
    cy, dee = book[("cy", "quantization")], book[("dee", "quantization")]
    assert cy["status"].startswith("unreachable: ") and "(since 2026-10-03T00:05:00" in \
        cy["status"]                                    # the freeze recorded it unreachable
    assert dee["status"].endswith("no longer exists (force-pushed?)")
    assert float(cy["max_score"]) == float(dee["max_score"]) == \
        float(book[("ada", "quantization")]["max_score"])
    grades = {r["student"]: r for r in csv.DictReader(open(root / "whole" / "grades.csv"))}
    assert "bob" in grades and "2 d late, -20%" in grades["bob"]["status"]


def test_results_record_the_repository_and_commit_not_a_temporary_path(klass):
    root, _ = klass
    results = json.loads((root / "whole" / "ada" / "results.json").read_text())
    assert {"score", "max_score", "execution_time", "output", "tests"} <= set(results)
    extra = results["extra_data"]["by_assignment"]["quantization"]
    assert extra["submission"] == str(root / "ada")
    assert extra["submission_commit"] == git("rev-parse", "HEAD", cwd=root / "ada")
    assert len(extra["grader_commit"] or "") == 40


def test_two_shards_merged_equal_the_unsharded_run(klass):
    root, roster = klass
    for i in (1, 2):
        assert grade(roster, root / f"shard{i}", "--shard", f"{i}/2") == 0
    assert main(["class", "merge", str(root / "shard1"), str(root / "shard2"),
                 "--out", str(root / "merged")]) == 0
    whole, merged = gradebook(root / "whole"), gradebook(root / "merged")
    assert {k: [r[c] for c in STABLE] for k, r in merged.items()} == \
        {k: [r[c] for c in STABLE] for k, r in whole.items()}
    assert (root / "merged" / "bob" / "results.json").is_file()


def test_a_one_student_regrade_changes_only_that_row(klass, tmp_path):
    root, roster = klass
    out = tmp_path / "regrade"
    assert main(["class", "merge", str(root / "whole"), "--out", str(out)]) == 0
    before = gradebook(out)
    assert grade(roster, out, "--student", "cy", "--at-head") == 0
    after = gradebook(out)
    assert set(after) == set(before)
    assert [k for k in after if after[k] != before[k]] == [("cy", "quantization")]
    assert after[("cy", "quantization")]["status"].startswith(
        "unreachable: could not fetch: fatal:")


def test_the_maximum_counts_only_the_points_this_machine_grades():
    """On a CPU-only grader the GPU-only tests (quantization's speed task among them) are
    skipped, so they are not in the maximum a student is graded out of."""
    import torch

    from grader.authoring.docs import collected_tests
    from grader.classroom.grading import max_points
    from grader.course import get

    if torch.cuda.is_available():
        pytest.skip("a GPU machine grades the GPU-only tests too")
    records = [r for r in collected_tests([get("quantization")]) if r["event"] == "collected"]
    gpu_points = sum(r["points"] for r in records if r["gpu"])
    assert gpu_points > 0
    assert max_points([get("quantization")], "all")["quantization"] == pytest.approx(
        sum(r["points"] for r in records) - gpu_points)
