"""Raises at import time.
Expect: crashed at import: RuntimeError: boom
"""

raise RuntimeError("boom")
