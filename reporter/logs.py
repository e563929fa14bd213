"""The tail of a job log: read as a stream, only the end kept, cleaned of terminal codes and secrets.

Job logs reach 100 MB and more, so the log is never held whole: a bounded buffer keeps the last
bytes while the chunks go by.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

# CSI sequences (colours, "erase line") and the OSC/other two-byte escapes GitLab runners emit.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# GitLab's collapsible section markers: section_start:1700000000:name[collapsed=true]\r
_SECTION = re.compile(r"section_(?:start|end):\d+:[A-Za-z0-9_.\-]+(?:\[[^\]]*\])?\r?")

DEFAULT_LINES = 100
DEFAULT_MAX_BYTES = 256 * 1024


def tail_bytes(chunks: Iterable[bytes], max_bytes: int = DEFAULT_MAX_BYTES,
               deadline: float | None = None) -> tuple[bytes, bool]:
    """The last max_bytes of a stream, holding at most about twice that in memory.

    Returns the bytes and whether the stream was read to its end before the (monotonic) deadline.
    """
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) > 2 * max_bytes:
            del buffer[: len(buffer) - max_bytes]
        if deadline is not None and time.monotonic() > deadline:
            return bytes(buffer[-max_bytes:]), False
    return bytes(buffer[-max_bytes:]), True


def clean(raw: bytes, lines: int = DEFAULT_LINES, redact: Callable[[str], str] = lambda s: s) -> str:
    """Decode, strip terminal codes and section markers, keep the last lines, mask secrets."""
    text = raw.decode("utf-8", errors="replace")
    text = _SECTION.sub("", _ANSI.sub("", text))
    kept: list[str] = []
    for line in text.split("\n"):
        # A carriage return redraws the line (progress bars): what shows is the text after the last.
        line = line.rstrip("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    tail = kept[-lines:] if lines > 0 else []
    return redact("\n".join(tail))
