"""Delivery: one `Target` protocol, the targets built from the settings, and the files of events.

In the manner of openlineage-python's transports, every target has `send(events)`; `deliver` hands
the events to each chosen target and keeps, per target, the events it did not accept in a file that
`resend --from-file` sends again. `Databand` posts gzip-compressed JSON arrays to Databand's bulk
endpoint, with urllib3's Retry for 429 (Retry-After honoured), 5xx and broken connections, inside a
deadline. The other OpenLineage backends come from openlineage-python (an optional extra), in
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from reporter.errors import ConfigError, DeliveryError
from reporter.packed import raw_of
from reporter.settings import Settings

# A request carries at most this many events or this much JSON (before gzip), whichever comes
# first. Each part repeats the root run's event, because Databand drops a payload without it.
MAX_EVENTS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 4 * 1024 * 1024

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
# No new attempt starts after this many seconds, so with one last attempt's timeouts the worst
# case stays under two minutes: 80 + 5 + 30 = 115 s.
RETRY_DEADLINE = 80
RETRY_STATUSES = (429, 500, 502, 503, 504)
PARALLEL_POSTS = 8  # parts of a large pipeline in flight at once
BACKOFF_FACTOR = 0.5  # waits 0, 1, 2, 4, 8, 16, 16 ... seconds between attempts
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


class DeadlineRetry(Retry):
    """urllib3's Retry that starts no attempt past a deadline and never sleeps beyond it."""

    def __init__(self, *args, deadline: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def new(self, **kwargs):
        retry = super().new(**kwargs)
        retry.deadline = self.deadline
        return retry

    def _left(self) -> float:
        return float("inf") if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def get_backoff_time(self) -> float:
        return min(super().get_backoff_time(), self._left())

    def get_retry_after(self, response):
        after = super().get_retry_after(response)
        return None if after is None else min(after, MAX_RETRY_AFTER, self._left())

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or self._left() <= 0

    # -- a line per retry (issue 13): a wrong host shows in seconds ----------------------------
    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        retry = super().increment(method, url, response, error, _pool, _stacktrace)  # raises when exhausted
        if progress is not None:
            after = retry.get_retry_after(response) if response is not None and self.respect_retry_after_header \
                else None
            wait = retry.get_backoff_time() if after is None else after
            why = f"HTTP {response.status}" if response is not None else _cause(error) if error else "no answer"
            progress(f"Databand: attempt {len(retry.history)} failed ({why}); "
                     f"trying again in {wait:.0f} s ({self._left():.0f} s left to retry)")
        return retry


@dataclass
class Outcome:
    """What a delivery did, for the summary."""

    target: str
    sent: int = 0
    requests: int = 0
    unsent: list[dict] = field(default_factory=list)


class Target(Protocol):
    """Where events go. `send` returns what it did, or raises DeliveryError holding exactly the
    events not accepted (with the root run's); `describe` says where, without any secret."""

    name: str  # as --target names it; the kept file and its resend command use it

    def describe(self) -> str: ...

    def send(self, events: Sequence[dict]) -> Outcome: ...


class Databand:
    """Databand's custom-integration bulk endpoint: one current event per run, in gzip parts."""

    name = "databand"

    def __init__(self, url: str, token: str, *, verify: bool | str = True, deadline: float | None = None,
                 backoff_factor: float | None = None):
        self.url = url
        self._token = token
        self.verify = verify
        self.deadline = RETRY_DEADLINE if deadline is None else deadline
        self.backoff_factor = BACKOFF_FACTOR if backoff_factor is None else backoff_factor

    def describe(self) -> str:
        return self.url

    def _session(self):
        retry = DeadlineRetry(
            total=8, connect=8, read=3, status=8, other=0,
            backoff_factor=self.backoff_factor, backoff_max=16,
            status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"POST"}),
            respect_retry_after_header=True, raise_on_status=False,
            deadline=time.monotonic() + self.deadline,
        )
        session = requests.Session()
        for scheme in ("https://", "http://"):
            session.mount(scheme, HTTPAdapter(max_retries=retry, pool_maxsize=PARALLEL_POSTS))
        session.headers.update({
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        })
        return session

    def send(self, events: Sequence[dict]) -> Outcome:
        """Send every part, a few at once; raise with exactly the events of the parts not accepted."""
        outcome = Outcome(target=self.url)
        session = self._session()
        refused: list[tuple[list[int], str]] = []
        in_flight: list = []

        def settle(indices: list[int], future) -> None:
            outcome.requests += 1
            try:
                future.result()
            except _Refused as reason:
                refused.append((indices, str(reason)))
            else:
                outcome.sent += len(indices)

        # Parts are made as they are taken from parts() and wait compressed (a 4 MiB part is ~100 KB).
        with ThreadPoolExecutor(max_workers=PARALLEL_POSTS) as pool:
            for indices, body in parts(events):
                if len(in_flight) >= PARALLEL_POSTS:
                    settle(*in_flight.pop(0))
                # Level 6: on 500 events, 0.4 % larger than level 9 and a fifth faster.
                packed = gzip.compress(body, compresslevel=6)
                in_flight.append((indices, pool.submit(self._post, session, packed)))
            for pending in in_flight:
                settle(*pending)
        if refused:
            root = root_index(events)
            kept = sorted({i for indices, _ in refused for i in indices if i != root})
            unsent = [events[i] for i in ([] if root is None else [root]) + kept]
            raise DeliveryError(f"Databand did not accept the events: {refused[0][1]}.", unsent=unsent)
        return outcome

    def _post(self, session, gzipped: bytes) -> None:
        try:
            # A redirect is never delivery: an SSO proxy answers the POST with a login page.
            response = session.post(self.url, data=gzipped, verify=self.verify, allow_redirects=False,
                                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
            response.close()
        except requests.RequestException as error:
            raise _Refused(f"could not reach Databand ({_cause(error)}) after retrying for up to "
                           f"{self.deadline:.0f} s") from None
        if 300 <= response.status_code < 400:
            where = response.headers.get("Location") or "nowhere said"
            raise _Refused(f"{response.status_code} a redirect to {_location(where)}, which is not delivery: "
                           "DATABAND_URL is likely wrong or behind a login (SSO) proxy; use the URL "
                           "Databand's integration page gives")
        if not response.ok:
            raise _Refused(_refusal(response.status_code))


class _Refused(Exception):
    """A part Databand did not accept, after the retries."""


def _refusal(status: int) -> str:
    if status in (401, 403):
        return f"{status} refused the token (check DATABAND_ACCESS_TOKEN and that it belongs to this Databand URL)"
    if status == 404:
        return "404 at that URL: check DATABAND_URL (copy it from Databand's custom integration page)"
    if status == 413:
        return "413 the payload is too large"
    if status in RETRY_STATUSES:
        return f"{status} still after retrying; Databand may be down, resend later"
    return f"HTTP {status}"


def _location(where: str) -> str:
    # Only the address: a login page's query may carry a state or a token.
    return where.split("?", 1)[0].split("#", 1)[0][:200]


def _cause(error: Exception) -> str:
    # The exception text can hold the URL; the URL is not secret but is long. Name the kind only.
    text = type(error).__name__
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
    own and never stops the others. Raises one DeliveryError naming every failure and kept file."""
    outcomes: list[Outcome] = []
    failures: list[DeliveryError] = []
    for target in targets:
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
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise DeliveryError("; ".join(f"{e.target}: {e}" for e in failures), unsent=failures[0].unsent,
                            kept_at=", ".join(e.kept_at for e in failures if e.kept_at))
    return outcomes


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
    anything is sent."""
    try:
        with open(path, "rb") as handle:
            events = json.load(handle)
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}.") from None
    except ValueError:
        raise ConfigError(f"{path} is not a JSON array of events (is it a file the reporter wrote?).") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ConfigError(f"{path} is not a JSON array of events (is it a file the reporter wrote?).")
    if events and root_event(events) is None:
        raise ConfigError(f"{path} has no root run event; Databand would drop it.")
    return events
