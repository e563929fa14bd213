"""The tail of a job log: read as a stream, only the end kept, cleaned of terminal codes and secrets.

Job logs reach 100 MB and more, so the log is never held whole: a bounded buffer keeps the last
bytes while the chunks go by. The window's edges can fall inside a line, and so inside a token: a
cut-off piece of a token matches neither the known secrets nor any token shape, so clean() drops
the partial first and last lines rather than mask them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

# CSI sequences (colours, "erase line") and the OSC/other two-byte escapes GitLab runners emit.
# Every run stops at the next escape or line end, so no two attempts scan the same characters.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# GitLab's collapsible section markers: section_start:1700000000:name[collapsed=true]\r
# The options are bounded: "section_start:1:a[" repeated would otherwise rescan to the line's end each time.
_SECTION = re.compile(r"section_(?:start|end):\d+:[A-Za-z0-9_.\-]+(?:\[[^\]\n]{0,256}\])?\r?")
_LINE_EDGE = re.compile(r"[\r\n]")

DEFAULT_LINES = 100
DEFAULT_MAX_BYTES = 256 * 1024


class Window(bytes):
    """The bytes kept from a stream, and whether their first or last line may be cut short.

    starts_cut: bytes before the window were dropped. A stream of max_bytes or more counts as cut:
    a server that honours the Range request sends exactly the last max_bytes of a longer log.
    ends_cut: the stream was left before its end (deadline) and the window does not end a line.
    """

    starts_cut = False
    ends_cut = False


def tail_bytes(chunks: Iterable[bytes], max_bytes: int = DEFAULT_MAX_BYTES,
               deadline: float | None = None) -> tuple[Window, bool]:
    """The last max_bytes of a stream, holding at most about twice that in memory.

    Returns the bytes and whether the stream was read to its end before the (monotonic) deadline.
    """
    buffer = bytearray()
    seen = 0
    complete = True
    for chunk in chunks:
        buffer += chunk
        seen += len(chunk)
        if len(buffer) > 2 * max_bytes:
            del buffer[: len(buffer) - max_bytes]
        if deadline is not None and time.monotonic() > deadline:
            complete = False
            break
    window = Window(buffer[-max_bytes:] if max_bytes > 0 else b"")
    window.starts_cut = seen >= max_bytes
    window.ends_cut = not complete and not window.endswith(b"\n")
    return window, complete


def clean(raw: bytes, lines: int = DEFAULT_LINES, redact: Callable[[str], str] = lambda s: s) -> str:
    """Decode, drop cut-off edge lines, strip terminal codes and section markers, mask secrets, keep
    the last lines.

    Only the end of the window is cleaned: the last lines and a margin above them as long as the
    longest form of a known secret (`reach`: a base64 wrapped a character a line still ends in
    the margin). That whole region is masked at once, before a carriage return's redraw is
    applied and before anything is cut away, so no secret is ever split by the cutting.
    """
    text = raw.decode("utf-8", errors="replace")
    if getattr(raw, "starts_cut", False):
        # Everything up to the first line end or redraw may be the end of a cut token.
        edge = _LINE_EDGE.search(text)
        text = text[edge.end():] if edge else ""
    if getattr(raw, "ends_cut", False):
        text = text[: text.rfind("\n") + 1]
    if lines <= 0:
        return ""
    margin = 2 * getattr(redact, "reach", 0) + 2
    wanted = lines + margin
    while True:
        start = _start_of_last(text, wanted)
        # Masked before the terminal codes are stripped: stripping "ESC E" from a secret's
        # "...R\x1bET..." would leave no form of it to find (the mask reads codes itself). The
        # section markers go first: a mask right after one would read as its [options].
        rows = _ANSI.sub("", redact(_SECTION.sub("", text[start:]))).split("\n")
        # The last lines worth showing: what a terminal shows of a line is the text after its last \r.
        end = len(rows)
        while end and not _shown(rows[end - 1]).strip():
            end -= 1
        if start == 0 or end - lines >= margin:
            break
        wanted *= 2  # blank lines at the end took some of the region: take more
    first = max(0, end - lines)
    return "\n".join(_shown(row) for row in rows[first:end])


def _start_of_last(text: str, count: int) -> int:
    """Where the last `count` lines of the text begin (0: the text has no more)."""
    at = len(text)
    for _ in range(count):
        at = text.rfind("\n", 0, at)
        if at < 0:
            return 0
    return at + 1


def _shown(line: str) -> str:
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[1] if "\r" in line else line
