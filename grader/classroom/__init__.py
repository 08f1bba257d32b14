"""The grade of record for a class, computed where students cannot interfere.

A student can edit the workflows of their own repository, so a grade computed on
their runner is advisory. The official grade is computed in the instructor's
repository (hidden tests never leave it), in steps that each leave a file:

    roster.csv      student,repository[,commit][,section,canvas_id,...]   (roster.py)
    deadlines.toml  a deadline per assignment, extensions, the late policy (deadlines.py)
    freeze.csv      what each repository held at each deadline, and later  (freeze.py)
    DIR/            the gradebook: one row per student x assignment, with
                    grades.csv, exports and each student's results        (gradebook.py)

1. `grader class freeze` (a scheduled workflow) records each repository's HEAD once
   its deadline has passed: commit dates are written by students and prove nothing,
   so only what the freeze saw counts. It only imports the standard library, so a
   light install runs it.
2. `grader class grade` fetches each recorded commit by hash, grades it in the
   sandbox (`--jobs K` at once, `--shard I/N` of the class) and adds the rows to
   the gradebook; other rows stay.
   Each row's status states a fact (gradebook.py: only `graded` and `nothing
   submitted` rows are the student's grade of record); `overrides.toml` holds the
   instructor's recourse (overrides.py) and a regrade writes what changed (changes.py).
3. `grader class merge` combines shards; `grader class export` writes a Canvas
   import and a plain CSV (blank where a row is not of record); `grader class
   feedback` and `grader class deliver` give students their feedback and the
   solutions once they can no longer submit (windows.py; each delivery is recorded
   in freeze.csv and ends the window).
4. `grader class report` (report.py, report_stats.py) and `grader class similarity`
   (similarity.py) are for a person: statistics, item analysis, flagged pairs. They
   never change a grade.

Nothing from a student's repository runs on the grading machine except their
assignment files inside the sandboxed worker: roster fields git would read as an
option or a command are refused when the roster is read (roster.py, git.py), git
runs no hooks, a commit is fetched without its blobs and only the student-owned
files are read from it, never checked out (owned.py), and no CSV cell can start a
spreadsheet formula (cells.py).
"""
