"""The `grader` command line (SPEC §4). Parses arguments, calls the pipeline, exits.

Everyone (a student's repository has only these):
    grader test [NAME...] [--task ID]           public tests on your working copy
    grader grade --submission DIR [--assignment NAME]... [--suite S] [--output F]
                 [--task ID]... [--classroom-result FILE]   GitHub Classroom's line too

The instructor's repository (it has reference/) adds:
    grader test|grade --reference ...           the same on reference/
    grader validate [--quick]                   reference 100%, stubs 0, in sync
    grader timings                              time the reference, per test
    grader release OUT_DIR                      write the student repository
    grader solutions OUT_DIR                    publish solutions/<name>/<file>
    grader stubs                                regenerate assignments/*/<file> and notebooks
    grader docs                                 regenerate the assignment, task and points tables
    grader gradescope --output FILE.zip         a Gradescope autograder
    grader class STEP ...                       the grade of record of a class (grader/classroom/)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grader.course import ASSIGNMENTS, REPO, get

# A released student repository has no reference/: instructor commands are not offered
# there (they would fail on the missing files) and --reference does not exist.
INSTRUCTOR = (REPO / "reference").is_dir()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:  # bad arguments: one clear line, no traceback
        print(f"grader: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description="LLM Systems Lab grader")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    test = commands.add_parser("test", help="run the public tests on your working copy")
    test.add_argument("names", nargs="*", metavar="NAME", help="assignments (default: all)")
    if INSTRUCTOR:
        test.add_argument("--reference", action="store_true", help="test reference/ instead")
    test.add_argument("--task", action="append", default=[], metavar="ID",
                      help="only this task's tests, e.g. --task 5.1 (repeatable)")
    test.set_defaults(run=_test)

    grade = commands.add_parser("grade", help="grade a submission, write results.json")
    source = grade.add_mutually_exclusive_group(required=True)
    source.add_argument("--submission", type=Path, help="a student-shaped directory")
    if INSTRUCTOR:
        source.add_argument("--reference", action="store_true", help="grade reference/")
    grade.add_argument("--assignment", action="append", default=[], metavar="NAME")
    grade.add_argument("--suite", choices=["public", "hidden", "all"], default="all")
    grade.add_argument("--output", type=Path, default=Path("results.json"))
    grade.add_argument("--budget", type=float, default=None,
                       help="seconds per assignment before unfinished tests fail "
                            "(default: the manifest's time_budget_s)")
    _add_total_budget(grade)
    grade.add_argument("--task", action="append", default=[], metavar="ID",
                       help="grade only this task's tests, e.g. --task 1.5 (repeatable)")
    grade.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    grade.add_argument("--classroom-result", type=Path, metavar="FILE",
                       help="append GitHub Classroom's reporter line (result=<base64>) to FILE, "
                            "e.g. \"$GITHUB_OUTPUT\"")
    grade.set_defaults(run=_grade, reference=False)
    test.set_defaults(reference=False)
    if INSTRUCTOR:
        _add_instructor_commands(commands)
    return parser


def _add_instructor_commands(commands) -> None:
    from grader.classroom.commands import add_commands as add_class_commands


    validate = commands.add_parser("validate", help="instructor consistency check")
    validate.add_argument("--quick", action="store_true", help="sync and import checks only")
    validate.add_argument("--assignment", action="append", default=[], metavar="NAME")
    validate.set_defaults(run=_validate)

    timings = commands.add_parser(
        "timings", help="instructor: grade the reference and write tests/<name>/timings.json, "
                        "each test's time (per-test budgets scale from it)")
    timings.add_argument("--assignment", action="append", default=[], metavar="NAME")
    timings.set_defaults(run=_timings)

    release = commands.add_parser("release", help="write the student repository")
    release.add_argument("out", type=Path, metavar="OUT_DIR")
    release.add_argument("--assignment", action="append", default=[], metavar="NAME")
    release.set_defaults(run=_release)

    solutions = commands.add_parser("solutions", help="publish the solutions")
    solutions.add_argument("out", type=Path, metavar="OUT_DIR")
    solutions.add_argument("--assignment", action="append", default=[], metavar="NAME")
    solutions.set_defaults(run=_solutions)

    stubs = commands.add_parser("stubs", help="regenerate the stubs from reference/")
    stubs.set_defaults(run=_stubs)

    docs = commands.add_parser("docs", help="regenerate the tables of assignments, tasks and "
                                            "points in the READMEs and handouts")
    docs.set_defaults(run=_docs)

    gradescope = commands.add_parser("gradescope", help="a Gradescope autograder zip")
    gradescope.add_argument("--output", type=Path, required=True, metavar="FILE.zip")
    gradescope.add_argument("--assignment", action="append", default=[], metavar="NAME")
    gradescope.set_defaults(run=_gradescope)

    add_class_commands(commands)


def _add_total_budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--total-budget", type=float, default=None, metavar="SECONDS",
                        help="seconds for all assignments of a submission together; the "
                             "tests left when it runs out fail (default: TOTAL_BUDGET_S of "
                             "grader/pipeline/grade.py, which says why)")


def _total_budget(args) -> float:
    from grader.pipeline.grade import TOTAL_BUDGET_S

    return TOTAL_BUDGET_S if args.total_budget is None else args.total_budget


def _assignments(names: list[str]):
    """The named assignments (default: all), in course order whatever the order given."""
    chosen = {get(n).name for n in names} or set(ASSIGNMENTS)
    return [a for a in ASSIGNMENTS.values() if a.name in chosen]


def _test(args) -> int:
    """In-process, on the files themselves (not a staged copy): tracebacks point at
    the student's own file, and plain `pytest --pdb` works the same way."""
    from grader.pipeline.collect import Staged, stage_reference
    from grader.pipeline.grade import GradeOptions, grade

    assignments = _assignments(args.names)
    staged = stage_reference(assignments) if args.reference else Staged(REPO, "working copy")
    options = GradeOptions(assignments, suite="public", output=None, profile="dev",
                           isolate=False, tasks=tuple(args.task))
    try:
        report = grade(staged, options, log=lambda m: None)
    finally:
        if args.reference:
            staged.cleanup()
    print(report.text_summary())
    failures = report.failures_text()
    if failures:
        print("\nFailing tests (the first line says which property; fix the first one first):")
        print(failures)
    return 0 if report.score == report.max_score and report.max_score > 0 else 1


def _grade(args) -> int:
    from grader.pipeline.grade import GradeOptions, grade, stage

    if args.submission is not None and not args.submission.is_dir():
        raise ValueError(f"--submission {args.submission} is not a directory")
    if args.suite == "hidden" and not INSTRUCTOR:
        raise ValueError("--suite hidden: the hidden tests are not in a student repository; "
                         "they run in official grading (--suite public grades what is here)")
    assignments = _assignments(args.assignment)
    staged = stage(None if args.reference else args.submission.resolve(), assignments)
    options = GradeOptions(assignments, suite=args.suite, output=args.output.resolve(),
                           budget_s=args.budget, total_budget_s=_total_budget(args),
                           verbose=args.verbose, tasks=tuple(args.task))
    try:
        report = grade(staged, options, log=lambda m: print(m, file=sys.stderr))
    finally:
        staged.cleanup()
    print(report.text_summary())
    failures = report.failures_text(limit=10)
    if failures:
        print("\n" + failures)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(report.markdown())
    if args.classroom_result:
        with open(args.classroom_result, "a") as f:
            f.write(f"result={report.classroom_base64()}\n")
    print(f"\nresults written to {args.output}")
    return 3 if report.ungradable else 0


def _validate(args) -> int:
    from grader.authoring.validate import validate

    problems = validate(_assignments(args.assignment), quick=args.quick,
                        log=lambda m: print(m, file=sys.stderr))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("valid" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def _timings(args) -> int:
    from grader.course import REPO
    from grader.pipeline.timings import measure

    try:
        written = measure(_assignments(args.assignment), log=lambda m: print(m, file=sys.stderr))
    except RuntimeError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 1
    for path in written.values():
        print(f"wrote {path.relative_to(REPO)}")
    return 0


def _release(args) -> int:
    from grader.authoring.release import release

    if args.out.resolve() == REPO or REPO in args.out.resolve().parents:
        raise ValueError("OUT_DIR must be outside the instructor repository")
    log = release(args.out, _assignments(args.assignment))
    print(log.summary())
    print(f"student repository written to {args.out}: `git init` it as a fresh history")
    return 0


def _solutions(args) -> int:
    from grader.authoring.release import solutions

    log = solutions(args.out, _assignments(args.assignment))
    print(log.summary())
    return 0


def _gradescope(args) -> int:
    from grader.authoring.gradescope import build_autograder

    path = build_autograder(args.output, _assignments(args.assignment))
    print(f"Gradescope autograder written to {path}: upload it as the assignment's "
          "autograder (Ubuntu 22.04 or newer base image)")
    return 0


def _stubs(args) -> int:
    from grader.authoring.release import write_stubs

    for path in write_stubs():
        print(f"regenerated {path.relative_to(REPO)}")
    return 0


def _docs(args) -> int:
    from grader.authoring.docs import expected_blocks, write_blocks

    for path in write_blocks(expected_blocks(list(ASSIGNMENTS.values()))):
        print(f"regenerated {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
