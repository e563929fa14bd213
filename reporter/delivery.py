"""Delivery: one `Target` protocol, the targets built from the settings, and the files of events.

In the manner of openlineage-python's transports, every target has `send(events)`; `deliver` hands
the events to each chosen target and keeps, per target, the events it did not accept in a file that
`resend --from-file` sends again. `Databand` posts gzip-compressed JSON arrays to Databand's bulk
endpoint, retrying 429 (Retry-After honoured), 5xx and broken connections in a loop of its own, each
attempt and all of them bounded in time (reporter/timebound.py). The other OpenLineage backends come from openlineage-python (an optional extra), in
reporter/transports.py.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import requests

from reporter import timebound as deadline  # the lead's merge takes the delivery branch's import
from reporter import wire
from reporter.errors import ConfigError, DeliveryError, Interrupted
from reporter.packed import raw_of
from reporter.settings import Settings
from reporter.timebound import stopped as _process_stopping

# A request carries at most this many events or this much JSON (before gzip), whichever comes
# first. Each part repeats the root run's event, because Databand drops a payload without it.
MAX_EVENTS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 4 * 1024 * 1024

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30  # the longest wait for each chunk of Databand's answer
# One attempt (connect, send the part, read the answer) is cut off after this many seconds of wall
# clock, however slowly Databand trickles its answer.
ATTEMPT_SECONDS = 35
# No new attempt starts after this many seconds from the start of the delivery, and waits between
# attempts end there too, so the worst case is 80 + 35 = 115 s for all parts together.
RETRY_DEADLINE = 80
MAX_ATTEMPTS = 9
RETRY_STATUSES = (429, 500, 502, 503, 504)
PARALLEL_POSTS = 8  # parts of a large pipeline in flight at once
BACKOFF_FACTOR = 0.5  # waits 0, 1, 2, 4, 8, 16, 16 ... seconds between attempts
BACKOFF_MAX = 16
MAX_RETRY_AFTER = 30
# Told a line per retry of a Databand request (the CLI sets it to print to the job log).
progress: Callable[[str], None] | None = None


def root_index(events: Sequence[dict]) -> int | None:
    """Where the root run's event is: the one without a parent facet (Databand keeps only payloads
    with it). The reporter puts it first."""
    for index, event in enumerate(events):
        if "parent" not in event.get("run", {}).get("facets", {}):
            return index
    return None


def root_event(events: Sequence[dict]) -> dict | None:
    index = root_index(events)
    return None if index is None else events[index]


def parts(events: Sequence[dict], max_events: int = MAX_EVENTS_PER_REQUEST,
           max_bytes: int = MAX_BYTES_PER_REQUEST) -> Iterator[tuple[list[int], bytes]]:
    """The parts as (event indices, JSON body), made as they are asked for, so that only the parts
    in flight are in memory. Every part starts with the root run's event."""
    root = root_index(events)
    head = [] if root is None else [root]
    head_bytes = [raw_of(events, i) for i in head]
    indices, body, size = list(head), list(head_bytes), sum(map(len, head_bytes)) + 2
    sent_any = False
    for index in range(len(events)):
        if index == root:
            continue
        encoded = raw_of(events, index)
        if len(indices) > len(head) and (len(indices) >= max_events or size + len(encoded) + 1 > max_bytes):
            yield indices, b"[" + b",".join(body) + b"]"
            sent_any = True
            indices, body, size = list(head), list(head_bytes), sum(map(len, head_bytes)) + 2
        indices.append(index)
        body.append(encoded)
        size += len(encoded) + 1
    if len(indices) > len(head) or (indices and not sent_any):  # a pipeline of the root alone too
        yield indices, b"[" + b",".join(body) + b"]"


@dataclass
class Outcome:
    """What a delivery did, for the summary."""

    target: str
    sent: int = 0
    requests: int = 0


class Target(Protocol):
    """Where events go. `send` returns what it did, or raises DeliveryError holding exactly the
    events not accepted (with the root run's); `describe` says where, without any secret."""

    name: str  # as --target names it; the kept file and its resend command use it

    def describe(self) -> str: ...

    def send(self, events: Sequence[dict]) -> Outcome: ...


class Databand:
    """Databand's custom-integration bulk endpoint: one current event per run, in gzip parts.

    Each part is posted in attempts of its own loop: an attempt is cut off after ATTEMPT_SECONDS,
    429, 5xx and broken connections are tried again (Retry-After honoured) until RETRY_DEADLINE,
    a 3xx or any other answer is a refusal. Only a 2xx of this very URL counts as delivery.
    """

    name = "databand"

    def __init__(self, url: str, token: str, *, verify: bool | str = True, deadline: float | None = None,
                 backoff_factor: float | None = None):
        self.url = url
        self._token = token
        self.verify = verify
        self.deadline = RETRY_DEADLINE if deadline is None else deadline
        self.backoff_factor = BACKOFF_FACTOR if backoff_factor is None else backoff_factor
        self._stop = _process_stopping()  # set when the process stops: no more waits or attempts

    def describe(self) -> str:
        return self.url

    def _session(self):
        session = requests.Session()
        adapter = deadline.BoundedAdapter(max_retries=0, pool_maxsize=PARALLEL_POSTS)
        for scheme in ("https://", "http://"):
            session.mount(scheme, adapter)
        session.headers.update({
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        })
        return session

    def send(self, events: Sequence[dict]) -> Outcome:
        """Send every part, a few at once; raise with exactly the events of the parts not accepted.
        Interrupted (a signal) leaves at once, holding the events of every part not yet accepted."""
        outcome = Outcome(target=self.url)
        session = self._session()
        stop_at = time.monotonic() + self.deadline
        refused: list[tuple[list[int], str]] = []
        accepted: set[int] = set()
        in_flight: list = []

        def settle(indices: list[int], future) -> None:
            outcome.requests += 1
            try:
                future.result()
            except _Refused as reason:
                refused.append((indices, str(reason)))
            else:
                outcome.sent += len(indices)
                accepted.update(indices)

        pool = ThreadPoolExecutor(max_workers=PARALLEL_POSTS, thread_name_prefix="databand-post")
        try:
            # Parts are made as they are taken from parts() and wait compressed (a 4 MiB part is ~100 KB).
            for indices, body in parts(events):
                if len(in_flight) >= PARALLEL_POSTS:
                    settle(*in_flight.pop(0))
                # Level 6: on 500 events, 0.4 % larger than level 9 and a fifth faster.
                packed = gzip.compress(body, compresslevel=6)
                in_flight.append((indices, pool.submit(self._post, session, packed, stop_at)))
            while in_flight:
                settle(*in_flight.pop(0))
        except Interrupted as stop:
            deadline.stop_everything()
            pool.shutdown(wait=False, cancel_futures=True)
            for indices, future in in_flight:  # answered 2xx before the signal: acknowledged
                if future.done() and not future.cancelled() and future.exception() is None:
                    accepted.update(indices)
            root = root_index(events)
            stop.unsent = [events[i] for i in range(len(events)) if i == root or i not in accepted]
            raise
        pool.shutdown(wait=True)
        if refused:
            root = root_index(events)
            kept = sorted({i for indices, _ in refused for i in indices if i != root})
            unsent = [events[i] for i in ([] if root is None else [root]) + kept]
            raise DeliveryError(f"Databand did not accept the events: {refused[0][1]}.", unsent=unsent)
        return outcome

    def _post(self, session, gzipped: bytes, stop_at: float) -> None:
        """One part, in attempts, until a 2xx, a refusal, or no time left to try again."""
        started = time.monotonic()
        attempt = 0
        while True:
            if time.monotonic() >= stop_at:  # a part queued behind slow ones: no attempt past the deadline
                raise _Refused(f"not sent: the {self.deadline:g} s of the delivery were spent before its turn")
            attempt += 1
            retry_after = None
            try:
                with deadline.bounded(ATTEMPT_SECONDS):
                    # A redirect is never delivery: an SSO proxy answers the POST with a login page.
                    response = session.post(self.url, data=gzipped, verify=self.verify, allow_redirects=False,
                                            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), stream=True)
                    response.close()  # the answer's body says nothing we need
            except requests.exceptions.SSLError as error:
                raise _Refused(f"its TLS certificate was not accepted ({wire.tls_problem(error)}): set "
                               "DATABAND_CA_FILE to the PEM file of the CA that signed it") from None
            except requests.RequestException as error:
                if self._stop.is_set():
                    raise _Refused("stopped by a signal") from None
                why = _cause(error)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                if 300 <= status < 400:
                    where = response.headers.get("Location") or "nowhere said"
                    raise _Refused(f"{status} a redirect to {_location(where)}, which is not delivery: "
                                   "DATABAND_URL is likely wrong or behind a login (SSO) proxy; use the URL "
                                   "Databand's integration page gives")
                if status not in RETRY_STATUSES:
                    raise _Refused(_refusal(status))
                why = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            wait = retry_after if retry_after is not None else self._backoff(attempt)
            left = stop_at - time.monotonic()
            if attempt >= MAX_ATTEMPTS or left <= 0 or wait > left:
                spent = time.monotonic() - started
                tried = f"{attempt} attempt{'s' if attempt > 1 else ''} in {spent:.1f} s"
                if why.startswith("HTTP "):
                    raise _Refused(f"{why[5:]} still after retrying ({tried}); Databand may be down, resend later")
                raise _Refused(f"could not reach Databand ({why}) after {tried}")
            if progress is not None:
                progress(f"Databand: attempt {attempt} failed ({why}); trying again in {wait:.0f} s "
                         f"({left:.0f} s left to retry)")
            if self._stop.wait(wait):
                raise _Refused("stopped by a signal")

    def _backoff(self, attempt: int) -> float:
        # The first retry at once (a dropped kept-alive connection), then doubling.
        return 0.0 if attempt <= 1 else min(self.backoff_factor * 2 ** (attempt - 1), BACKOFF_MAX)


class _Refused(Exception):
    """A part Databand did not accept, after the retries."""


def _refusal(status: int) -> str:
    if status in (401, 403):
        return f"{status} refused the token (check DATABAND_ACCESS_TOKEN and that it belongs to this Databand URL)"
    if status == 404:
        return "404 at that URL: check DATABAND_URL (copy it from Databand's custom integration page)"
    if status == 413:
        return "413 the payload is too large"
    return f"HTTP {status}"  # the statuses worth retrying never come here: see Databand._post


def _location(where: str) -> str:
    # Only the address: a login page's query may carry a state or a token.
    return where.split("?", 1)[0].split("#", 1)[0][:200]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return MAX_RETRY_AFTER


def _cause(error: Exception) -> str:
    # The exception text can hold the URL; the URL is not secret but is long. Name the kind only.
    text = type(error).__name__
    if isinstance(error, deadline.OutOfTime):
        return f"no complete answer within {error.seconds:g} s"
    if "timed out" in str(error).lower() or "timeout" in text.lower():
        return f"{text}: no answer in time"
    return text


def make_targets(settings: Settings) -> list[Target]:
    """The targets the settings choose, built (and so checked) before anything is sent."""
    if settings.dry_run:
        return []
    # CI_SERVER_TLS_CA_FILE is GitLab's CA only: Databand gets its own, or the system's (REQUESTS_CA_BUNDLE).
    verify: bool | str = False if settings.insecure else (settings.databand_ca_file or True)
    chosen: list[Target] = []
    for name in dict.fromkeys(settings.targets):
        if name == "databand":
            chosen.append(Databand(*settings.databand(), verify=verify))
        elif name in ("openlineage", "file", "console"):
            try:
                from reporter import transports  # needs the optional openlineage-python
            except ImportError:
                raise ConfigError(f"--target {name} needs openlineage-python: pip install "
                                  "'databand-gitlab-reporter[openlineage]'.") from None
            chosen.append(transports.make(name, file_path=settings.target_file, verify=verify,
                                          env=settings.openlineage))
        else:
            raise ConfigError(f"Unknown target {name!r}: use databand, openlineage, file or console.")
    return chosen


def deliver(targets: Sequence[Target], events: Sequence[dict], label: str | int, keep_dir: str = ".") -> list[Outcome]:
    """Hand the events to every target; a target that fails keeps its unsent events in a file of its
    own and never stops the others. Raises one DeliveryError naming every failure and kept file.
    Interrupted (a signal) keeps, for the target being sent to and each one not reached yet, the
    events not acknowledged, and goes on up with the files in `kept`."""
    outcomes: list[Outcome] = []
    failures: list[DeliveryError] = []
    pending = list(targets)
    try:
        while pending:
            target = pending[0]
            try:
                outcomes.append(target.send(events))
            except DeliveryError as error:
                error.target = target.name
                try:
                    error.kept_at = keep_unsent(error.unsent, label, keep_dir, prefix=f"{target.name}-unsent",
                                                why=str(error))
                except DeliveryError as lost:  # nowhere to keep them: said, and the next target still runs
                    lost.target = target.name
                    error = lost
                failures.append(error)
            pending.pop(0)
    except Interrupted as stop:
        stop.kept += [(e.target, e.kept_at) for e in failures if e.kept_at]
        stop.lost += [f"{e.target}: {e}" for e in failures if not e.kept_at]
        keep_interrupted(stop, pending, events, label, keep_dir)
        raise
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise DeliveryError("; ".join(f"{e.target}: {e}" for e in failures), unsent=failures[0].unsent,
                            kept_at=", ".join(e.kept_at for e in failures if e.kept_at))
    return outcomes


def keep_interrupted(stop: Interrupted, pending: Sequence[Target], events: Sequence[dict], label: str | int,
                     keep_dir: str = ".") -> None:
    """Keep what each target not done has not acknowledged: the first of `pending` was being sent to
    (its `stop.unsent`, when it says), the others had nothing yet."""
    for position, target in enumerate(pending):
        unsent = stop.unsent if position == 0 and stop.unsent is not None else list(events)
        if not unsent:
            continue
        try:
            path = keep_unsent(unsent, label, keep_dir, prefix=f"{target.name}-unsent",
                               why=f"Stopped by {stop.name} before {target.name} acknowledged every event")
        except DeliveryError as lost:
            stop.lost.append(f"{target.name}: {lost}")
        else:
            stop.kept.append((target.name, path))


def write_events(path: str, events: Sequence[dict]) -> None:
    """Write the events as one JSON array, atomically: a temporary file beside it, synced, renamed.
    Never a truncated file where the path says a complete one is."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".databand-", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            dump(events, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def dump(events: Sequence[dict], handle) -> None:
    """A JSON array, one event a line, written as it goes: a large pipeline never makes one string."""
    handle.write(b"[\n")
    for index in range(len(events)):
        handle.write((b",\n" if index else b"") + raw_of(events, index))
    handle.write(b"\n]\n")


def keep_unsent(events: Sequence[dict], pipeline_id: int | str, directory: str = ".",
                prefix: str = "databand-unsent", why: str = "") -> str:
    """Write unsent events to a file and return its path: in `directory`, else in the temporary
    folder. When neither can be written the error says both why delivery failed and why keeping did."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{prefix}-{pipeline_id}-{stamp}.json"
    problems = []
    for folder in dict.fromkeys([directory, tempfile.gettempdir()]):
        path = name if folder in ("", ".") else os.path.join(folder, name)
        try:
            write_events(path, events)
            return path
        except OSError as error:
            problems.append(f"{folder or '.'}: {error.strerror or type(error).__name__}")
    raise DeliveryError(f"{why.rstrip('.')}. And the {len(events)} unsent events could not be kept "
                        f"({'; '.join(problems)}): they are lost unless the report is sent again "
                        "(resend --project ... --pipeline ...).", unsent=list(events))


def load_events(path: str) -> list[dict]:
    """Events from a file written by --output, --dry-run or a failed delivery, checked whole before
    anything is sent: a JSON array of run events (run.runId, eventType, eventTime, job.namespace and
    job.name) of one pipeline, so with exactly one root run."""
    try:
        with open(path, "rb") as handle:
            events = json.load(handle)
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}.") from None
    except ValueError:
        raise ConfigError(f"{path} is not a JSON array of events (cut short, or not a file the reporter "
                          "wrote?); nothing was sent.") from None
    if not isinstance(events, list) or not events:
        raise ConfigError(f"{path} is not a JSON array of events (is it a file the reporter wrote?); "
                          "nothing was sent.")
    for index, event in enumerate(events):
        problem = _event_problem(event)
        if problem:
            raise ConfigError(f"{path}: item {index} is not a run event the reporter wrote ({problem}); "
                              "nothing was sent.")
    roots = sum(1 for event in events if "parent" not in (event["run"].get("facets") or {}))
    if roots != 1:
        raise ConfigError(f"{path} has {roots} root run events where one is due (Databand drops a payload "
                          "without it; a file holds one pipeline); nothing was sent.")
    return events


def _event_problem(event: object) -> str | None:
    if not isinstance(event, dict):
        return "not an object"
    run, job = event.get("run"), event.get("job")
    if not isinstance(run, dict) or not isinstance(run.get("runId"), str) or not run["runId"]:
        return "no run.runId"
    if run.get("facets") is not None and not isinstance(run["facets"], dict):
        return "run.facets is not an object"
    for key in ("eventType", "eventTime"):
        if not isinstance(event.get(key), str) or not event[key]:
            return f"no {key}"
    if not isinstance(job, dict) or not all(isinstance(job.get(k), str) and job[k] for k in ("namespace", "name")):
        return "no job.namespace and job.name"
    return None
