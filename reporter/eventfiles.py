"""Files of events: the one atomic writer (events, kept files, the backfill cursor), the kept files'
names, and reading a file of events back, checked whole.

A kept file is `<target>-unsent-<label>-<UTC stamp>.json` (a second one in the same second gets
`-2`, `-3` ...): its name says which target it is for and so the command that sends it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from reporter import PROG, filecheck
from reporter.errors import ConfigError
from reporter.packed import raw_of
from reporter.targets import NAMES

_KEPT = re.compile(rf"({'|'.join(map(re.escape, NAMES))})-unsent-(.+)-\d{{8}}T\d{{6}}Z(?:-\d+)?")


def write_atomic(path: str, write: Callable[[BinaryIO], None], *, replace: bool = True) -> str:
    """Write a file whole or not at all: a temporary file beside it, synced, renamed. Never a
    truncated file where the path says a complete one is. With `replace=False` an existing file
    is never overwritten: the name gets -2, -3 ... before its extension. Returns the path written."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".databand-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
            return path
        return _link_free_name(temporary, path)
    finally:
        with contextlib.suppress(OSError):  # renamed away: the usual end
            os.unlink(temporary)


def _link_free_name(temporary: str, path: str) -> str:
    stem, extension = os.path.splitext(path)
    for number in range(1, 1000):
        candidate = path if number == 1 else f"{stem}-{number}{extension}"
        try:
            os.link(temporary, candidate)  # fails when the name is taken, as a rename would not
            return candidate
        except FileExistsError:
            continue
        except OSError:  # a file system without hard links: a check, then the rename
            if not os.path.exists(candidate):
                os.replace(temporary, candidate)
                return candidate
    raise FileExistsError(path)


def dump(events: Sequence[dict], handle: BinaryIO) -> None:
    """A JSON array, one event a line, written as it goes: a large pipeline never makes one string."""
    handle.write(b"[\n")
    for index in range(len(events)):
        handle.write((b",\n" if index else b"") + raw_of(events, index))
    handle.write(b"\n]\n")


def write_events(path: str, events: Sequence[dict]) -> None:
    """The events as one JSON array, atomically (--output). A device or a FIFO (/dev/stdout,
    /dev/full) is written through: a rename would put a regular file in its place (as root, even
    in /dev), and every write it fails would look like a success."""
    if filecheck.special(path):
        _write_through(path, lambda handle: dump(events, handle))
    else:
        write_atomic(path, lambda handle: dump(events, handle))


def _write_through(path: str, write: Callable[[BinaryIO], None]) -> None:
    # Opened without waiting: a FIFO nobody reads fails at once (ENXIO) instead of hanging. The
    # writes then wait as any program's output does.
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as handle:
        write(handle)
        handle.flush()  # a full device fails here, not unseen at close


@dataclass(frozen=True)
class Kept:
    """Where unsent events were kept, or why they could not be."""

    path: str | None = None
    problem: str | None = None


def keep_unsent(events: Sequence[dict], label: int | str, target: str, directory: str = ".",
                now: datetime | None = None) -> Kept:
    """Write unsent events to a file of their own: in `directory`, else in the temporary folder."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    name = f"{target}-unsent-{label}-{stamp}.json"
    problems = []
    for folder in dict.fromkeys([directory, tempfile.gettempdir()]):
        path = name if folder in ("", ".") else os.path.join(folder, name)
        try:
            return Kept(path=write_atomic(path, lambda handle: dump(events, handle), replace=False))
        # Broad on purpose: whatever fails here (a full disk, an event that cannot be encoded), the
        # next folder is tried, and the caller says why none took the file.
        except Exception as error:  # noqa: BLE001
            problems.append(f"{folder or '.'}: {getattr(error, 'strerror', None) or type(error).__name__}")
    return Kept(problem="; ".join(problems))


def label_of(path: str) -> str:
    """What a kept file is about: "9001" for databand-unsent-9001-20261124T101500Z.json."""
    name = os.path.basename(path).removesuffix(".json")
    match = _KEPT.fullmatch(name)
    return match[2] if match else name


def resend_command(path: str, target: str | None = None) -> str:
    """The exact command that sends a kept file: its target is in its name."""
    if target is None:
        match = _KEPT.fullmatch(os.path.basename(path).removesuffix(".json"))
        target = match[1] if match else "databand"
    again = "" if target == "databand" else f" --target {target}"
    return f"{PROG} resend --from-file {shlex.quote(path)}{again}"  # pasted into a shell: TMPDIR may hold a space


def _one_object_a_line(path: str) -> bool:
    """Whether the file's first line is a whole JSON object with an eventType (--target file's NDJSON)."""
    try:
        if not os.path.isfile(path):  # a FIFO's open() would wait for a writer
            return False
        with open(path, "rb") as handle:
            first = json.loads(handle.readline(1 << 20))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(first, dict) and "eventType" in first


def load_events(path: str) -> list[dict]:
    """Events from a file written by --output, --dry-run or a failed delivery, checked whole before
    anything is sent (reporter.filecheck): a JSON array of run events of one pipeline, one event a
    run, with exactly one root run."""
    lines = (f"{path} holds a JSON document a line (the file target's lifecycle events, which resend does "
             "not take): resend the pipeline by id, --project ... --pipeline ...; nothing was sent.")
    try:
        events = filecheck.read_json(path)
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror or type(error).__name__}; nothing was sent.") from None
    except filecheck.BadFile as error:
        if _one_object_a_line(path):
            raise ConfigError(lines) from None
        raise ConfigError(f"{path} is not a file of events the reporter wrote: {error}; nothing was sent.") from None
    if events == []:
        raise ConfigError(f"{path} holds no events (an empty array); nothing was sent.")
    if isinstance(events, dict) and _one_object_a_line(path):
        raise ConfigError(lines)
    if not isinstance(events, list) or not events:
        raise ConfigError(f"{path} is not a JSON array of events (is it a file the reporter wrote?); "
                          "nothing was sent.")
    for index, event in enumerate(events):
        problem = filecheck.event_problem(event)
        if problem:
            raise ConfigError(f"{path}: item {index} is not a run event the reporter wrote ({problem}); "
                              "nothing was sent.")
    roots = sum(1 for event in events if filecheck.parent_of(event) is None)
    if roots != 1:
        raise ConfigError(f"{path} has {roots} root run events where one is due (Databand drops a payload "
                          "without it; a file holds one pipeline); nothing was sent.")
    problem = filecheck.runs_problem(events)
    if problem:
        raise ConfigError(f"{path} is not one pipeline's events: {problem}; nothing was sent.")
    return events
