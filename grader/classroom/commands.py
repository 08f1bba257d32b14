"""`grader class ...`: the instructor's commands for the grade of record (SPEC §5).

    grader class freeze ROSTER [--output FILE] [--deadlines FILE] [--assignment NAME]...
    grader class freeze ... [--report-once]
    grader class grade ROSTER --out DIR [--assignment NAME]... [--student NAME]... [--all]
                                        [--jobs K] [--shard I/N] [--freeze FILE]
                                        [--overrides FILE]
    grader class merge DIR... --out DIR
    grader class export DIR --format canvas|plain --output FILE [--roster ROSTER]
                            [--canvas FILE] [--strict]
    grader class feedback DIR --out FOLDER [--assignment NAME]...
    grader class deliver ROSTER DIR --what feedback|solutions [--assignment NAME]...
                                    [--early REASON] [--freeze FILE]
    grader class report DIR [--deadlines FILE]
    grader class similarity DIR [--assignment NAME]... [--threshold SCORE] [--code FOLDER]

By default the freeze records (freeze.csv) and the deadlines (deadlines.toml) sit
beside the roster. `freeze` imports only the standard library: a light install
(`pip install --no-deps -e .`) runs it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from grader.classroom.deadlines import Schedule, load_schedule, parse_time
from grader.classroom.roster import read_roster, shard
from grader.course import ASSIGNMENTS, get


def add_commands(commands) -> None:
    classroom = commands.add_parser("class", help="instructor: the grade of record of a class")
    steps = classroom.add_subparsers(required=True, metavar="STEP")

    freeze = steps.add_parser("freeze", help="record each repository's HEAD once its deadline "
                                             "has passed (run it on a schedule)")
    freeze.add_argument("roster", type=Path, metavar="ROSTER")
    freeze.add_argument("--output", type=Path, help="the records (default: freeze.csv beside "
                                                    "the roster); appended to, never rewritten")
    _add_schedule_options(freeze)
    freeze.add_argument("--assignment", action="append", default=[], metavar="NAME",
                        help="only these; one without a deadline is frozen now")
    freeze.add_argument("--report-once", action="store_true",
                        help="exit 1 only when a repository is first found unreachable for "
                             "a deadline; one still unreachable since an earlier run is "
                             "listed and exits 0")
    freeze.add_argument("--now", metavar="TIME",
                        help="act as if it were TIME (ISO 8601 with a zone, e.g. "
                             "2026-10-03T00:05:00Z): rehearse a term on local "
                             "repositories (README)")
    freeze.set_defaults(run=_freeze)

    grade = steps.add_parser("grade", help="grade each student at the recorded commits")
    grade.add_argument("roster", type=Path, metavar="ROSTER")
    grade.add_argument("--out", type=Path, required=True, metavar="DIR")
    grade.add_argument("--assignment", action="append", default=[], metavar="NAME")
    grade.add_argument("--student", action="append", default=[], metavar="NAME",
                       help="only these students (a regrade changes only their rows)")
    grade.add_argument("--jobs", type=int, default=1, metavar="K",
                       help="students graded at once (at most the machine's cores)")
    grade.add_argument("--shard", metavar="I/N", help="every N-th student from the I-th")
    grade.add_argument("--suite", choices=["public", "hidden", "all"], default="all")
    grade.add_argument("--freeze", type=Path, metavar="FILE",
                       help="the freeze's records (default: freeze.csv beside the roster)")
    _add_schedule_options(grade)
    grade.add_argument("--at-head", action="store_true",
                       help="grade HEAD where no commit was recorded (practice runs only)")
    grade.add_argument("--total-budget", type=float, default=None, metavar="SECONDS",
                       help="seconds per student, all assignments together")
    grade.add_argument("--overrides", type=Path, metavar="FILE",
                       help="instructor overrides (default: overrides.toml beside the "
                            "roster, if there is one)")
    grade.add_argument("--all", action="store_true",
                       help="every student and assignment (the default; not with "
                            "--student or --assignment)")
    grade.add_argument("--now", metavar="TIME",
                        help="act as if it were TIME (ISO 8601 with a zone, e.g. "
                             "2026-10-03T00:05:00Z): rehearse a term on local "
                             "repositories (README)")
    grade.set_defaults(run=_grade)

    merge = steps.add_parser("merge", help="combine shard outputs into one gradebook")
    merge.add_argument("sources", nargs="+", type=Path, metavar="DIR")
    merge.add_argument("--out", type=Path, required=True, metavar="DIR")
    merge.set_defaults(run=_merge)

    export = steps.add_parser("export", help="the gradebook as a Canvas import or a plain CSV")
    export.add_argument("folder", type=Path, metavar="DIR")
    export.add_argument("--format", choices=["canvas", "plain"], required=True)
    export.add_argument("--output", type=Path, required=True, metavar="FILE")
    export.add_argument("--roster", type=Path, help="for Canvas's ID, SIS and section columns")
    export.add_argument("--canvas", type=Path, metavar="FILE",
                        help="Canvas assignment ids, [assignments] name = id (default: "
                             "canvas.toml beside the roster, if there is one)")
    export.add_argument("--strict", action="store_true",
                        help="exit 1 when a row cannot be matched to the LMS (default: warn)")
    export.set_defaults(run=_export)

    feedback = steps.add_parser("feedback", help="a markdown page per student and assignment "
                                                 "(hidden tests as property and smallest input)")
    feedback.add_argument("folder", type=Path, metavar="DIR")
    feedback.add_argument("--out", type=Path, metavar="FOLDER", help="default: DIR/feedback")
    feedback.add_argument("--assignment", action="append", default=[], metavar="NAME")
    feedback.add_argument("--student", action="append", default=[], metavar="NAME")
    feedback.set_defaults(run=_feedback)

    deliver = steps.add_parser("deliver", help="push feedback or solutions to a branch of each "
                                               "student's repository (never over their files)")
    deliver.add_argument("roster", type=Path, metavar="ROSTER")
    deliver.add_argument("folder", type=Path, metavar="DIR")
    deliver.add_argument("--what", choices=["feedback", "solutions"], required=True)
    deliver.add_argument("--assignment", action="append", default=[], metavar="NAME")
    deliver.add_argument("--feedback", type=Path, metavar="FOLDER",
                         help="the pages of `grader class feedback` (default: DIR/feedback)")
    deliver.add_argument("--early", metavar="REASON",
                         help="deliver before the windows (deadline, late window, extensions) "
                              "have ended, saying why: it ends them now, so each student's "
                              "HEAD now is graded and later commits are not")
    deliver.add_argument("--freeze", type=Path, metavar="FILE",
                         help="the freeze's records, where each delivery is recorded before "
                              "it is pushed (default: freeze.csv beside the roster)")
    _add_schedule_options(deliver)
    deliver.add_argument("--now", metavar="TIME",
                        help="act as if it were TIME (ISO 8601 with a zone, e.g. "
                             "2026-10-03T00:05:00Z): rehearse a term on local "
                             "repositories (README)")
    deliver.set_defaults(run=_deliver)

    report = steps.add_parser("report", help="DIR/report/index.html: statistics, item "
                                             "analysis, late days, a page per student")
    report.add_argument("folder", type=Path, metavar="DIR")
    report.add_argument("--deadlines", type=Path, metavar="FILE",
                        help="deadlines.toml, for the extensions in the late-days table")
    report.set_defaults(run=_report)

    similar = steps.add_parser("similarity", help="DIR/similarity/: pairs of graded files "
                                                  "that look alike, for a person to look at "
                                                  "(never changes a grade)")
    similar.add_argument("folder", type=Path, metavar="DIR")
    similar.add_argument("--assignment", action="append", default=[], metavar="NAME",
                         help="only these (default: every assignment in the gradebook)")
    similar.add_argument("--threshold", type=float, default=None, metavar="SCORE",
                         help="show pairs scoring at least this, 0..1 (default 0.5: half of "
                              "either file's code, stub removed, found in the other)")
    similar.add_argument("--code", type=Path, metavar="FOLDER",
                         help="compare FOLDER/<student>/<file> (or FOLDER/<assignment>/"
                              "<student>/<file>) instead of re-reading each graded commit")
    similar.set_defaults(run=_similarity)


def _add_schedule_options(parser) -> None:
    parser.add_argument("--deadlines", type=Path, metavar="FILE",
                        help="deadlines, extensions and late policy (default: deadlines.toml "
                             "beside the roster, if there is one)")


def _schedule(args) -> Schedule:
    path = args.deadlines or args.roster.with_name("deadlines.toml")
    if args.deadlines is None and not path.exists():
        return Schedule()
    return load_schedule(path, set(ASSIGNMENTS))


def _names(chosen: list[str]) -> list[str]:
    wanted = {get(n).name for n in chosen} or set(ASSIGNMENTS)
    return [name for name in ASSIGNMENTS if name in wanted]


def _freeze(args) -> int:
    from grader.classroom.freeze import append_records, freeze, read_records

    output = args.output or args.roster.with_name("freeze.csv")
    schedule = _schedule(args)
    now = parse_time(args.now, "--now") if args.now else datetime.now(UTC).replace(microsecond=0)
    manual = bool(args.assignment) or not schedule.deadlines
    new, failures = freeze(read_roster(args.roster), _names(args.assignment), schedule,
                           read_records(output), now, manual=manual,
                           log=lambda m: print(m, file=sys.stderr))
    earlier = read_records(output)
    append_records(output, new)
    print(f"{len([r for r in new if r.commit or r.kind != 'unreachable'])} commits recorded "
          f"in {output}")
    if not failures:
        return 0
    print(f"NOT RECORDED ({len(failures)}), the next run tries again:", file=sys.stderr)
    for line in failures:
        print(f"  {line}", file=sys.stderr)
    if not args.report_once:
        return 1
    first = {(r.student, r.assignment) for r in new if r.kind == "unreachable"}
    for r in earlier:
        if r.kind == "unreachable" and (r.student, r.assignment) not in first and any(
                line.startswith(f"{r.student} ({r.assignment}):") for line in failures):
            print(f"  {r.student} ({r.assignment}): still unreachable since {r.seen_at}",
                  file=sys.stderr)
    return 1 if first else 0


def _grade(args) -> int:
    from grader.classroom.freeze import read_records
    from grader.classroom.grading import ClassRun, grade_class
    from grader.classroom.overrides import load_overrides
    from grader.pipeline.grade import TOTAL_BUDGET_S

    if args.all and (args.student or args.assignment):
        raise ValueError("--all: every student and assignment, so not with --student or "
                         "--assignment")
    if args.overrides and not args.overrides.exists():
        raise ValueError(f"--overrides: {args.overrides} does not exist")
    students = read_roster(args.roster)
    unknown = sorted(set(args.student) - {s.name for s in students})
    if unknown:
        raise ValueError(f"--student: not in the roster: {', '.join(unknown)}")
    students = [s for s in shard(students, args.shard)
                if not args.student or s.name in args.student]
    assignments = [get(name) for name in _names(args.assignment)]
    records = read_records(args.freeze or args.roster.with_name("freeze.csv"))
    run = ClassRun(assignments, args.out, suite=args.suite, schedule=_schedule(args),
                   records=records, jobs=args.jobs, at_head=args.at_head,
                   now=parse_time(args.now, "--now") if args.now else None,
                   overrides=load_overrides(args.overrides or args.roster.with_name(
                       "overrides.toml"), {s.name for s in read_roster(args.roster)},
                       set(ASSIGNMENTS)),
                   total_budget_s=TOTAL_BUDGET_S if args.total_budget is None
                   else args.total_budget)
    print(f"grading {len(students)} students x {len(assignments)} assignments, "
          f"{args.jobs} at a time", file=sys.stderr)
    book = grade_class(students, run, log=lambda m: print(m, file=sys.stderr))
    graded = [r for r in book.values() if r.student in {s.name for s in students}
              and r.assignment in {a.name for a in assignments}]
    not_graded = [r for r in graded if r.status.split(" ")[0] != "graded"]
    print(f"{len(graded) - len(not_graded)} of {len(graded)} rows graded; gradebook in "
          f"{args.out / 'gradebook.csv'}, grades in {args.out / 'grades.csv'}")
    for row in not_graded:
        print(f"  {row.student} ({row.assignment}): {row.status}")
    return 3 if any(r.status.startswith("ungradable") for r in graded) else 0


def _merge(args) -> int:
    from grader.classroom.gradebook import merge

    rows = merge(args.sources, args.out)
    print(f"{len(rows)} rows from {len(args.sources)} folders in {args.out / 'gradebook.csv'}")
    return 0


def _export(args) -> int:
    from grader.classroom.exports import export, load_canvas_ids, notes_path
    from grader.classroom.gradebook import of_record, read_gradebook

    rows = read_gradebook(args.folder)
    if not rows:
        raise ValueError(f"{args.folder}: no gradebook.csv with rows")
    canvas = args.canvas or (args.roster.with_name("canvas.toml") if args.roster else None)
    ids = load_canvas_ids(canvas, set(ASSIGNMENTS)) \
        if canvas and (args.canvas or canvas.exists()) else {}
    warnings = export(rows, read_roster(args.roster) if args.roster else [], args.format,
                      args.output, ids)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    blank = sum(not of_record(r) for r in rows.values())
    notes = notes_path(args.output) if args.format == "canvas" else "its notes column"
    print(f"{args.format} export of {len(rows)} rows written to {args.output}: {blank} rows "
          f"not of record left blank (why: {notes}), {len(warnings)} warnings")
    return 1 if warnings and args.strict else 0


def _feedback(args) -> int:
    from grader.classroom.feedback import write_feedback

    out = args.out or args.folder / "feedback"
    pages = write_feedback(args.folder, out, _names(args.assignment) if args.assignment else None,
                           args.student or None)
    print(f"{len(pages)} feedback pages written under {out}")
    return 0


def _deliver(args) -> int:
    from grader.classroom.deliver import deliver_class
    from grader.classroom.windows import Gate

    if args.what == "solutions" and not args.assignment:
        raise ValueError("--assignment: name the assignments whose solutions to publish")
    if args.early is not None and not args.early.strip():
        raise ValueError("--early: say why the windows end now")
    now = parse_time(args.now, "--now") if args.now else datetime.now(UTC).replace(microsecond=0)
    gate = Gate(_schedule(args), args.freeze or args.roster.with_name("freeze.csv"), now,
                (args.early or "").strip())
    rows = deliver_class(read_roster(args.roster), args.folder, args.what,
                         [get(name) for name in _names(args.assignment)],
                         feedback_dir=args.feedback or args.folder / "feedback",
                         log=lambda m: print(m, file=sys.stderr), gate=gate)
    failed = [r for r in rows if r["status"].startswith("not delivered")]
    waiting = sum(r["status"].startswith("waiting") for r in rows)
    print(f"{len(rows) - len(failed) - waiting} of {len(rows)} delivered, {waiting} waiting "
          f"for their window to end; list in {args.folder / 'delivered.csv'}")
    return 1 if failed else 0


def _report(args) -> int:
    from grader.classroom.report import write_report

    schedule = load_schedule(args.deadlines, set(ASSIGNMENTS)) if args.deadlines else None
    index = write_report(args.folder, schedule)
    print(f"class report written to {index}")
    return 0


def _similarity(args) -> int:
    from grader.classroom.gradebook import read_gradebook
    from grader.classroom.similarity import THRESHOLD, similarity

    try:
        import copydetect  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError("class similarity needs copydetect: pip install copydetect "
                         "(or the dev extra)") from None
    chosen = args.assignment or sorted({r.assignment for r in read_gradebook(args.folder).values()})
    if not chosen:
        raise ValueError(f"{args.folder}: no gradebook rows, and no --assignment")
    threshold = THRESHOLD if args.threshold is None else args.threshold
    pairs, skipped = similarity(args.folder, [get(name) for name in _names(chosen)],
                                code=args.code, threshold=threshold)
    for name, reasons in skipped.items():
        if reasons:
            print(f"{name}: {len(reasons)} not compared (not graded, or no commit)",
                  file=sys.stderr)
    print(f"{len(pairs)} pairs at or above {threshold:.2f}, for a person to look at (grades "
          f"unchanged): {args.folder / 'similarity' / 'index.html'}")
    return 0
