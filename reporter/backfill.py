"""Backfill: re-send a project's past pipelines, a few at a time, resumable.

A cursor file records the pipelines already sent; an interrupted backfill started again with the
same file skips them. Run IDs are deterministic, so even a pipeline sent twice is no duplicate.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from typing import BinaryIO

from reporter import eventfiles, filecheck, ids, report, status, targets, timebound
from reporter.errors import ConfigError, ReporterError
from reporter.gitlab import http, read
from reporter.process import Interrupted, signals_to_main
from reporter.settings import Settings


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
    # For a sweep: each pipeline's updated_at when it was sent, so a pipeline GitLab changed since
    # (a job retried, a late cancel) is sent again and an unchanged one is not.
    versions: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, path: str, query: dict, *, written: bool = True) -> Cursor:
        """The cursor at `path`, checked whole (reporter.filecheck), and, when it will be `written`,
        shown to be writable now: before anything is listed or sent, not after the first pipeline."""
        cursor = cls(path=path, query=query)
        if written:
            _check_writable(path)
        if not os.path.exists(path):
            return cursor
        try:
            saved = filecheck.read_json(path)
        except (OSError, filecheck.BadFile) as error:
            why = str(error) if isinstance(error, filecheck.BadFile) else error.strerror or type(error).__name__
            raise ConfigError(f"The backfill cursor {path} is unreadable ({why}); delete it to start over.") from None
        unreadable = ConfigError(f"The backfill cursor {path} is not a cursor the reporter wrote (an object of "
                                 '"query", "done" and "versions"); delete it to start over.')
        if not isinstance(saved, dict):
            raise unreadable
        done, versions = saved.get("done", []), saved.get("versions") or {}
        if not isinstance(done, list) or not isinstance(versions, dict) or not all(map(_is_id, [*done, *versions])) \
                or not all(isinstance(v, str) for v in versions.values()):
            raise unreadable
        if saved.get("query") != query:
            shown = json.dumps(saved.get("query"), ensure_ascii=True)  # one line, whatever it holds
            raise ConfigError(f"The backfill cursor {path} belongs to another query "
                              f"({shown if len(shown) <= 200 else shown[:200] + ' ...'}); pass another --cursor or "
                              "delete it.")
        cursor.done = {int(i) for i in done}
        cursor.versions = {int(i): v for i, v in versions.items()}
        return cursor

    def mark(self, pipeline_id: int, version: str | None = None) -> None:
        with self._lock:
            self.done.add(pipeline_id)
            if version is not None:
                self.versions[pipeline_id] = version
            saved: dict = {"query": self.query, "done": sorted(self.done)}
            if self.versions:
                saved["versions"] = {str(k): v for k, v in sorted(self.versions.items())}

            def write(handle: BinaryIO) -> None:
                handle.write(json.dumps(saved).encode())

            eventfiles.write_atomic(self.path, write)


def _check_writable(path: str) -> None:
    """The cursor is written as every file of the reporter is (eventfiles.write_atomic: a temporary
    file beside it, renamed), so its folder must take a new file and the path must not be a folder."""
    problem = None
    if os.path.isdir(path):
        problem = "it is a folder"
    elif filecheck.special(path):
        problem = "it is not a regular file (a pipe or a device?)"
    else:
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".databand-", suffix=".tmp"):
                pass
            # The temporary file's name is short; the rename to the cursor's own fails on a name
            # longer than the file system takes (found only after the first pipeline was sent).
            longest = os.pathconf(folder, "PC_NAME_MAX")
            if len(os.fsencode(os.path.basename(path))) > longest:
                problem = f"its name is longer than the {longest} bytes a file name may have there"
        except OSError as error:
            problem = f"{error.strerror or type(error).__name__} in {_shown_path(folder)}"
    if problem is not None:
        raise ConfigError(f"The cursor {_shown_path(path)} cannot be written ({problem}); pass a --cursor in a "
                          "folder the job can write (nothing was listed or sent).")


def _shown_path(path: str) -> str:
    """A path as a message shows it: a very long one by its ends."""
    return path if len(path) <= 160 else f"{path[:80]}…{path[-60:]}"


def _is_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isascii()
                                                                        and ids.is_number(value))


class _Unsaved(Cursor):
    """A cursor that remembers nothing (a dry run)."""

    def mark(self, pipeline_id: int, version: str | None = None) -> None:
        pass


@dataclass
class Result:
    pipeline_id: int
    error: ReporterError | None = None
    skipped: bool = False


def run(pipeline_ids: Iterable[int], send: Callable[[int], None], cursor: Cursor, concurrency: int,
        progress: Callable[[Result], None], versions: dict[int, str] | None = None) -> list[Result]:
    """Send each pipeline not in the cursor yet, `concurrency` at a time; a failure does not stop the rest.
    With `versions` (a sweep), a pipeline is skipped only when the cursor has it at the same version."""
    results: list[Result] = []
    todo = []
    for pipeline_id in pipeline_ids:
        sent_before = (cursor.versions.get(pipeline_id) == versions.get(pipeline_id)) if versions is not None \
            else pipeline_id in cursor.done
        if sent_before:
            result = Result(pipeline_id, skipped=True)
            results.append(result)
            progress(result)
        else:
            todo.append(pipeline_id)

    recorded: list[int] = []  # sent and in the cursor, also by workers that end after a stop

    def one(pipeline_id: int) -> Result:
        try:
            send(pipeline_id)
        except ReporterError as error:
            return Result(pipeline_id, error=error)
        try:
            cursor.mark(pipeline_id, None if versions is None else versions.get(pipeline_id, ""))
        except OSError as error:  # writable when the run began; a full disk since
            return Result(pipeline_id, error=ConfigError(
                f"sent, but the cursor {cursor.path} could not be written ({error.strerror or type(error).__name__}): "
                "the next run sends this pipeline again"))
        recorded.append(pipeline_id)
        return Result(pipeline_id)

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency), initializer=signals_to_main) as pool:
            for future in as_completed([pool.submit(one, p) for p in todo]):
                result = future.result()
                results.append(result)
                progress(result)
    except Interrupted as stop:  # the pool's exit waited for the workers the stop cut
        raise stop.with_(progress=f"{len(recorded)} of {len(todo)} pipelines sent") from None
    return results


@dataclass
class Backfill:
    """What a backfill (or a sweep) found and did, for the summary."""

    project: str
    since: str
    cursor: Cursor
    pipeline_ids: list[int]
    results: list[Result] = field(default_factory=list)
    versions: dict[int, str] | None = None  # a sweep's updated_at per pipeline
    kind: str = "Backfill"
    dry_run: bool = False  # set by execute: then nothing is sent, nor recorded
    client: http.Client | None = field(default=None, repr=False)  # the plan's GitLab client, reused by execute

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.error is not None]

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.skipped)

    def line(self) -> str:
        done = len(self.pipeline_ids) - len(self.failed) - self.skipped
        verb = "built, not sent (--dry-run)" if self.dry_run else "sent"
        return (f"{self.kind}: {len(self.pipeline_ids)} pipelines, {done} {verb}, {self.skipped} skipped "
                f"(sent before, unchanged), {len(self.failed)} failed. Cursor: {self.cursor.path}"
                f"{' (not written by a dry run)' if self.dry_run else ''}")

    @property
    def exit_code(self) -> int:
        """The code the worst failure asks for (a GitLab error 3, a delivery 4), 0 when none failed."""
        return max((r.error.exit_code for r in self.results if r.error is not None), default=0)

    def failure_line(self) -> str | None:
        if not self.failed:
            return None
        return (f"{len(self.failed)} pipelines were not sent; run the same command again to retry only those "
                "(the cursor skips the rest).")


def plan(settings: Settings, project: str, since: str, ref: str | None, statuses: tuple[str, ...],
         cursor_path: str | None) -> Backfill:
    """The pipelines of a project updated since a date, and the cursor of those already sent."""
    if not project:
        raise ConfigError("A backfill needs --project.")
    client = report.gitlab_client(settings)
    targets.make_targets(settings)  # every target's settings are checked before GitLab is read
    project_ref: str | int = int(project) if ids.is_number(project) else project
    updated_after = parse_since(since)
    # Masked as it is written and as it is compared: the cursor file is an exit too.
    query = settings.redactor().values({"project": str(project), "since": updated_after, "ref": ref,
                                        "status": sorted(statuses)})
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(project))
    # Before the listing: a cursor that cannot be read or written is said before GitLab is asked.
    cursor = Cursor.open(cursor_path or f".databand-backfill-{safe}.json", query, written=not settings.dry_run)
    found = read.list_pipelines(_listing(settings, client), project_ref, updated_after=updated_after, ref=ref,
                                statuses=statuses)
    return Backfill(project=str(project), since=updated_after, cursor=cursor,
                    pipeline_ids=[int(p["id"]) for p in found], client=client)


def _listing(settings: Settings, client: http.Client) -> http.Client:
    """A listing of pipelines reads within a --gitlab-timeout of its own, as each pipeline does."""
    return client.within(settings.gitlab_timeout, settings.sources.get("gitlab_timeout", "--gitlab-timeout"))


def execute(settings: Settings, backfill: Backfill, concurrency: int, progress: Callable[[Result], None]) -> Backfill:
    """Read and send each pipeline of the plan not sent before, `concurrency` at a time; `progress`
    hears of each pipeline (settings.progress, of each retry)."""
    project_ref: str | int = int(backfill.project) if ids.is_number(backfill.project) else backfill.project
    client = backfill.client or report.gitlab_client(settings)  # one session for all; a budget for each pipeline

    def send(pipeline_id: int) -> None:
        sent = report.deliver(settings, report.collect(settings, project_ref, pipeline_id, client=client),
                              pipeline_id)
        failed = sent.delivery.error()
        if failed is not None:  # kept in a file; the cursor does not record it, so a rerun sends it again
            if timebound.stopped().is_set():
                # Cut by a stop, which says to run the same command again: that sends this pipeline,
                # so a file of its events as well would only send it twice.
                for failure in sent.delivery.failures:
                    if failure.kept:
                        with contextlib.suppress(OSError):
                            os.remove(failure.kept)
            raise failed

    # A dry run sends nothing, so it must record nothing: a real run after it still sends every pipeline.
    cursor = _Unsaved(**{f.name: getattr(backfill.cursor, f.name) for f in fields(Cursor) if f.name != "_lock"}) \
        if settings.dry_run else backfill.cursor
    backfill.dry_run = settings.dry_run
    backfill.results = run(backfill.pipeline_ids, send, cursor, concurrency, progress, backfill.versions)
    return backfill


# What a sweep reports: pipelines that ended, and those waiting on a person or a clock (status.SETTLED).
FINISHED = tuple(sorted(status.SETTLED))


def sweep_plan(settings: Settings, project: str, hours: float, cursor_path: str | None,
               statuses: tuple[str, ...] = FINISHED, now: datetime | None = None) -> Backfill:
    """The finished pipelines of a project updated in the last `hours`, each to be sent unless the
    cursor has it at the same updated_at: a canceled pipeline (GitLab runs no `.post` job then) or
    one whose report job never ran or failed reaches Databand on the next sweep, and a pipeline
    already reported is not sent again. Run IDs are deterministic, so a repeat is no duplicate.

    GitLab requests: one per 100 pipelines listed per status, then for each pipeline not sent
    before, what a report of it costs (the pipeline, its job and bridge pages, failed logs, ...).
    `statuses` narrows it: ("canceled",) sends only what no `.post` job can have reported."""
    unknown = set(statuses) - set(FINISHED)
    if unknown:
        raise ConfigError(f"sweep --status takes settled statuses ({', '.join(FINISHED)}); "
                          f"got {', '.join(sorted(unknown))}.")
    if not project:
        raise ConfigError("sweep needs --project (in a scheduled pipeline: --project $CI_PROJECT_ID).")
    client = report.gitlab_client(settings)
    targets.make_targets(settings)  # every target's settings are checked before GitLab is read
    now = now or datetime.now(timezone.utc)
    since = (now - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    project_ref: str | int = int(project) if ids.is_number(project) else project
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(project))
    cursor = Cursor.open(cursor_path or f".databand-sweep-{safe}.json",
                         {"project": str(project), "sweep": sorted(statuses)}, written=not settings.dry_run)
    # One listing of every status (fewer pages than one per final status), filtered here.
    found = [p for p in read.list_pipelines(_listing(settings, client), project_ref, updated_after=since)
             if p.get("status") in statuses]
    mask = settings.redactor()  # the cursor file is an exit too: what it holds is masked
    versions = {int(p["id"]): mask.known(str(p.get("updated_at") or "")) for p in found}
    # The cursor keeps only what the window still lists: it stays small however long it is used.
    cursor.versions = {i: v for i, v in cursor.versions.items() if i in versions}
    cursor.done &= set(versions)
    return Backfill(project=str(project), since=since, cursor=cursor, pipeline_ids=sorted(versions),
                    versions=versions, kind="Sweep", client=client)
