"""Files the reporter reads back (kept files for `resend --from-file`, backfill and sweep cursors),
checked whole before anything is sent: one line saying what is wrong, never a traceback halfway
through a delivery.

A file a person edited, or one cut short, can hold what no code here expects deep inside it: a
facet that is a string, a tag that is a list, a lone surrogate (which no UTF-8 request body can
carry), NaN (which is not JSON), nesting deep enough to exhaust the stack of a later walk, or
gigabytes. Each is found here, in the text and in every value, before the first request.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat

MAX_FILE_BYTES = 256 * 2**20  # a 10,000-job pipeline's events are about 25 MB
MAX_DEPTH = 64  # the reporter's events nest about 8 deep
EVENT_TYPES = frozenset({"START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"})
# A \uD800-\uDFFF escape: the only way a lone surrogate gets into JSON text that is valid UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadFile(ValueError):
    """What is wrong with a file, in words for the user."""


def _no_constant(name: str) -> object:
    raise BadFile(f"it holds {name}, which is not JSON")


def special(path: str) -> bool:
    """There, and not a regular file or folder: a FIFO's open() waits for a writer, a device never
    ends. Only a file the reporter wrote is read, or written over."""
    return os.path.exists(path) and not os.path.isdir(path) and not stat.S_ISREG(os.stat(path).st_mode)


def _finite(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # 1e999: json reads it as inf, which json.dumps writes as Infinity
        raise BadFile(f"it holds {text[:20]}, a number past any a float can hold")
    return number


def read_json(path: str) -> object:
    """The file's JSON, checked for size, NaN and Infinity, lone surrogates and depth. Raises
    OSError when it cannot be read, BadFile for what it holds."""
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory")
    if special(path):
        raise BadFile("it is not a regular file (a pipe or a device?)")
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
            raise BadFile(f"it is larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = handle.read(MAX_FILE_BYTES + 1)  # a device or a FIFO never ends: read no more than this
    if len(data) > MAX_FILE_BYTES:
        raise BadFile(f"it is larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        value = json.loads(data, parse_constant=_no_constant, parse_float=_finite)
    except BadFile:
        raise
    except RecursionError:
        raise BadFile(f"it nests deeper than {MAX_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise BadFile("it is not UTF-8 text") from None
    except ValueError:
        raise BadFile("it is not valid JSON (cut short?)") from None
    _check_values(value, surrogates=_SURROGATE_ESCAPE.search(data) is not None)
    return value


def _check_values(value: object, surrogates: bool) -> None:
    """Every value, without recursion: depth, and (when the text has a surrogate escape) strings
    and keys that UTF-8 cannot encode."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadFile(f"it nests deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            if surrogates and any(_SURROGATE.search(key) for key in item):
                raise BadFile("a name in it holds a lone surrogate (\\ud800-\\udfff), which is not text")
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif surrogates and isinstance(item, str) and _SURROGATE.search(item):
            raise BadFile("a string in it holds a lone surrogate (\\ud800-\\udfff), which is not text")


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _object_or_absent(holder: dict, key: str) -> bool:
    return key not in holder or isinstance(holder[key], dict)


def event_problem(event: object) -> str | None:
    """What keeps an item from being a run event every part of the reporter can read (the targets,
    the summary, the tree), or None. Only the fields the reporter reads are held to a type; the
    rest passes as the backend's to judge."""
    if not isinstance(event, dict):
        return "not an object"
    run, job = event.get("run"), event.get("job")
    if not isinstance(run, dict) or not _text(run.get("runId")):
        return "no run.runId"
    if not isinstance(event.get("eventType"), str) or event["eventType"] not in EVENT_TYPES:
        return f"eventType is not one of {', '.join(sorted(EVENT_TYPES))}"
    if not _text(event.get("eventTime")):
        return "no eventTime"
    if not isinstance(job, dict) or not all(_text(job.get(k)) for k in ("namespace", "name")):
        return "no job.namespace and job.name"
    for where, holder in (("run", run), ("job", job)):
        if "facets" not in holder:
            continue
        facets = holder["facets"]  # null too is refused: every reader takes an absent facets as {}
        if not isinstance(facets, dict) or not all(isinstance(f, dict) for f in facets.values()):
            return f"{where}.facets is not an object of objects"
    for key in ("inputs", "outputs"):
        if key in event and not (isinstance(event[key], list) and all(isinstance(d, dict) for d in event[key])):
            return f"{key} is not a list of objects"
    return _facet_problem(run.get("facets", {}), job.get("facets", {}))


# The facet fields the reporter itself reads, and the type each must have when present.
_STRINGS = (("run", "startTime", "startTime"), ("run", "nominalTime", "nominalStartTime"),
            ("run", "errorMessage", "message"), ("job", "jobType", "jobType"))


def _facet_problem(run_facets: dict, job_facets: dict) -> str | None:
    for side, facet, key in _STRINGS:
        holder = (run_facets if side == "run" else job_facets).get(facet, {})
        if key in holder and not isinstance(holder[key], str):
            return f"{side}.facets.{facet}.{key} is not a string"
    parent = run_facets.get("parent")
    if parent is not None and not (isinstance(parent.get("run"), dict) and _text(parent["run"].get("runId"))):
        return "run.facets.parent has no run.runId"
    tags = run_facets.get("tags")
    if tags is not None:
        if not all(isinstance(tags.get(k, ""), str) for k in ("runName", "projectName")):
            return "run.facets.tags.runName or projectName is not a string"
        listed = tags.get("tags", [])
        if not isinstance(listed, list) or not all(
                isinstance(t, dict) and isinstance(t.get("key"), str) and isinstance(t.get("value"), str)
                for t in listed):
            return "run.facets.tags.tags is not a list of {key, value} strings"
    return None


def parent_of(event: dict) -> str | None:
    parent = event["run"].get("facets", {}).get("parent")
    return None if parent is None else parent["run"]["runId"]


def runs_problem(events: list[dict]) -> str | None:
    """One event per run, and no run its own ancestor (the tree of the summary walks the parents)."""
    parents: dict[str, str | None] = {}
    for event in events:
        run_id = event["run"]["runId"]
        if run_id in parents:
            return f"run {run_id[:40]!r} has two events"
        parents[run_id] = parent_of(event)
    settled: set[str] = set()
    for start in parents:
        seen: set[str] = set()
        current: str | None = start
        while current is not None and current in parents and current not in settled:
            if current in seen:
                return f"run {current[:40]!r} is its own ancestor"
            seen.add(current)
            current = parents[current]
        settled |= seen
    return None
