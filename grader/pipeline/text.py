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
ADDRESS = re.compile(r"<([^<>\n]*?) at 0x[0-9a-fA-F]+>")   # innermost repr first


def without_addresses(text: str) -> str:
    """Reprs without memory addresses, which differ on every run and mean nothing to a
    student: '<function f at 0x7f..>' -> '<function f>', '<built-in method equal of type
    object at 0x7f..>' -> '<built-in method equal>'; a nested repr loses its own."""
    def plain(match: re.Match) -> str:
        inner = re.sub(r"^(built-in method \S+) of .*$", r"\1", match.group(1))
        return f"<{inner}>"

    return ADDRESS.sub(plain, text)


def shown(text: object, limit: int = MAX_SHOWN) -> str:
    """`text` as printable UTF-8: escapes and object addresses removed, control characters
    and lone surrogates written as \\xNN / \\udNNN, the middle cut beyond `limit` characters."""
    text = without_addresses(ANSI.sub("", str(text)))
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
