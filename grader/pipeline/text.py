"""Student text, made safe to show: once, where it enters the report.

Messages, tracebacks and prints come from student code. Shown as they are, a
lone surrogate crashes printing, a NUL truncates some viewers, ANSI escapes
repaint a terminal and a markdown fence escapes the step summary's code block.
`shown` keeps the text readable and makes every such character visible instead.
"""

from __future__ import annotations

import re

MAX_SHOWN = 20_000   # characters of one message: a failure needs its start and its end
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as printable UTF-8: escapes removed, control characters and lone
    surrogates written as \\xNN / \\udNNN, the middle cut beyond `limit` characters."""
    text = str(text)
    text = ANSI.sub("", text)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > limit:
        half = limit // 2
        text = f"{text[:half]}\n... ({len(text) - limit} characters cut) ...\n{text[-half:]}"
    return text


def fenced(text: str) -> list[str]:
    """Markdown lines of a code block that `text` cannot close: the fence is one backtick
    longer than the longest run of backticks inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, text, fence]
