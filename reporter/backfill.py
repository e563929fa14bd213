"""Backfill: re-send a project's past pipelines, a few at a time, resumable.

A cursor file records the pipelines already sent; an interrupted backfill started again with the
same file skips them. Run IDs are deterministic, so even a pipeline sent twice is no duplicate.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime

from reporter.errors import ConfigError, ReporterError


def parse_since(value: str) -> str:
    """A date or date-time to the ISO form GitLab's updated_after takes."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since must be a date like 2026-11-01 or 2026-11-01T08:00:00Z; got {value!r}.") from None
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # GitLab reads a time without zone as UTC
    return moment.isoformat()


@dataclass
class Cursor:
    """The pipelines done so far, in a small JSON file written after each one (atomically)."""

    path: str
    query: dict
    done: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, path: str, query: dict) -> "Cursor":
        cursor = cls(path=path, query=query)
        if os.path.exists(path):
            try:
                with open(path) as handle:
                    saved = json.load(handle)
                cursor.done = {int(i) for i in saved.get("done", [])}
            except (OSError, ValueError, TypeError):
                raise ConfigError(f"The backfill cursor {path} is unreadable; delete it to start over.") from None
            if saved.get("query") != query:
                raise ConfigError(f"The backfill cursor {path} belongs to another query ({saved.get('query')}); "
                                  "pass another --cursor or delete it.")
        return cursor

    def mark(self, pipeline_id: int) -> None:
        with self._lock:
            self.done.add(pipeline_id)
            directory = os.path.dirname(os.path.abspath(self.path))
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".cursor-")
            with os.fdopen(fd, "w") as handle:
                json.dump({"query": self.query, "done": sorted(self.done)}, handle)
            os.replace(temporary, self.path)


@dataclass
class Result:
    pipeline_id: int
    error: ReporterError | None = None
    skipped: bool = False


def run(pipeline_ids: Iterable[int], send: Callable[[int], None], cursor: Cursor, concurrency: int,
        progress: Callable[[Result], None]) -> list[Result]:
    """Send each pipeline not in the cursor yet, `concurrency` at a time; a failure does not stop the rest."""
    results: list[Result] = []
    todo = []
    for pipeline_id in pipeline_ids:
        if pipeline_id in cursor.done:
            result = Result(pipeline_id, skipped=True)
            results.append(result)
            progress(result)
        else:
            todo.append(pipeline_id)

    def one(pipeline_id: int) -> Result:
        try:
            send(pipeline_id)
        except ReporterError as error:
            return Result(pipeline_id, error=error)
        cursor.mark(pipeline_id)
        return Result(pipeline_id)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for future in as_completed([pool.submit(one, p) for p in todo]):
            result = future.result()
            results.append(result)
            progress(result)
    return results
