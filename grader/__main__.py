import sys

from grader.cli import main

if __name__ == "__main__":      # not when `grader class grade --jobs` starts its processes
    sys.exit(main())
