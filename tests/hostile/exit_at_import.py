"""Exits with status 0 at import (an exit-code grader would count that as a pass).
Expect: crashed at import
"""

import sys

sys.exit(0)
