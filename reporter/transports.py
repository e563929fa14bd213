"""Targets for any OpenLineage backend, through openlineage-python's own transports (the optional
`openlineage` extra; reporter.targets imports this module only when one of them is chosen).

`openlineage` posts each run's lifecycle (START, then COMPLETE/FAIL/ABORT) to a standard HTTP
endpoint configured as openlineage-python reads it: OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT,
OPENLINEAGE_API_KEY. `file` appends the lifecycle events to a file, one JSON document a line;
`console` prints them. Each is a targets.Target.

The HTTP target is bounded as Databand's is: urllib3's retries take their numbers from the one
retry policy (its Retry-After capped at the policy's longest wait and at the time left), every
request goes through the wall-clock adapter, and every event's request, retries included, ends
with the target's budget, however slowly an answer trickles in. Only a 2xx of the endpoint itself,
with an empty or a JSON body, is delivery (wire.not_delivery, Databand's rule too): a redirect (a
login page) is a refusal, never followed.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from openlineage.client.serde import Serde
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from reporter import filecheck, sendable, timebound, wire
from reporter.databand import verify_of
from reporter.errors import ConfigError, DeliveryError
from reporter.events import lifecycle
from reporter.retry import RetryPolicy
from reporter.settings import Settings, check_url
from reporter.targets import BOUNDS, NAMES, Bounds, Outcome, Target


def build(name: str, settings: Settings) -> Target:
    """The target as the settings describe it (targets.KINDS)."""
    if name == "openlineage":
        return OpenLineageHttp(settings.openlineage, verify=verify_of(settings), bounds=settings.delivery_bounds)
    if name == "file":
        return LifecycleFile(settings.target_file or "openlineage-events.ndjson")
    if name == "console":
        return Console()
    raise ConfigError(f"Unknown target {name!r}: use {', '.join(NAMES)}.")


def _event(event: dict) -> Any:
    # openlineage-python's transports serialise plain dicts as they do their own event classes,
    # which are all their types name.
    return event


class PolicyRetry(Retry):
    """urllib3's retries with the numbers of a RetryPolicy: its backoff, and a server's Retry-After
    honoured up to the policy's longest wait and never past `stop_at` (time.monotonic())."""

    policy: RetryPolicy
    stop_at: float

    @classmethod
    def of(cls, policy: RetryPolicy, stop_at: float) -> PolicyRetry:
        made = cls(total=policy.attempts - 1, connect=policy.attempts - 1, read=policy.attempts - 1,
                   redirect=0, status_forcelist=list(policy.statuses), allowed_methods=["POST"],
                   respect_retry_after_header=True, raise_on_status=False, raise_on_redirect=False)
        made.policy, made.stop_at = policy, stop_at
        return made

    def new(self, **changes) -> PolicyRetry:
        made = super().new(**changes)
        made.policy, made.stop_at = self.policy, self.stop_at
        return made

    def _left(self) -> float:
        return max(self.stop_at - time.monotonic(), 0.0)

    def get_retry_after(self, response) -> float | None:
        try:
            asked = super().get_retry_after(response)
        except InvalidHeader:  # neither seconds nor a date ("soon", "nan"): waits the longest, as retry.py says
            asked = self.policy.longest_wait
        return None if asked is None else min(asked, self.policy.longest_wait, self._left())

    def get_backoff_time(self) -> float:
        return min(self.policy.backoff_wait(len(self.history)), self._left())

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if error is not None and wire.unresolved_host(error):  # seconds of retries would not change it
            raise MaxRetryError(_pool, url, error) from error
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _NoRedirects(requests.Session):
    """A redirect is never delivery: an SSO proxy answers a POST with its login page, 200 once
    followed. openlineage-python follows them; this session never does."""

    def request(self, *args, **kwargs):  # type: ignore[override]
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)


class OpenLineageHttp:
    name = "openlineage"

    def __init__(self, env: Mapping[str, str], verify: bool | str = True, bounds: Bounds = BOUNDS):
        url = check_url(env.get("OPENLINEAGE_URL"), "OPENLINEAGE_URL", "http://marquez:5000")
        sendable.check_proxy(url)
        self.bounds = bounds
        params: dict = {"url": url, "timeout": (bounds.connect, bounds.read), "verify": verify is not False}
        if env.get("OPENLINEAGE_ENDPOINT"):
            params["endpoint"] = env["OPENLINEAGE_ENDPOINT"]
        if env.get("OPENLINEAGE_API_KEY"):
            params["auth"] = {"type": "api_key", "apiKey": env["OPENLINEAGE_API_KEY"]}
        if isinstance(verify, str):
            params["sslContext"] = {"caCertPath": verify}
        self._config = HttpConfig.from_dict(params)
        # Where openlineage-python posts: the endpoint resolved against the URL, as a browser would.
        self.where = urljoin(url, self._config.endpoint)
        if _origin(self.where) != _origin(url):  # an absolute endpoint would take the API key elsewhere
            raise ConfigError(f"OPENLINEAGE_ENDPOINT must be a path on OPENLINEAGE_URL's host ({_origin(url)}); "
                              "put the whole address in OPENLINEAGE_URL instead.")

    def _transport(self, stop_at: float) -> HttpTransport:
        adapter = timebound.BoundedAdapter(max_retries=PolicyRetry.of(self.bounds.retry, stop_at))
        session = _NoRedirects()
        for scheme in ("https://", "http://"):  # whatever host the endpoint names
            session.mount(scheme, adapter)
        self._config.session, self._config.adapter = session, adapter
        return HttpTransport(self._config)

    def send(self, events: Sequence[dict]) -> Outcome:
        outcome = Outcome(name=self.name, where=self.where, runs=len(events))
        stop_at = time.monotonic() + self.bounds.retry.budget
        transport = self._transport(stop_at)
        try:
            for event in lifecycle(events):
                left = stop_at - time.monotonic()
                if left <= 0:
                    raise DeliveryError(f"The OpenLineage backend did not take every event within "
                                        f"{self.bounds.retry.budget:g} s.", unsent=list(events))
                with timebound.bounded(left):
                    response = transport.emit(_event(event))  # one event a request: the spec's API has no batch
                outcome.requests += 1
                status = response.status_code
                answer = response.content
                what = wire.not_delivery(status, response.headers.get("Content-Type"),
                                         answer[:wire.ANSWER_BYTES], whole=len(answer) <= wire.ANSWER_BYTES)
                if what is not None:
                    raise DeliveryError(_refusal(status, response.headers.get("Location"), what),
                                        unsent=list(events))
                outcome.sent += 1
        except requests.HTTPError as error:  # emit's raise_for_status: 4xx, or 5xx after the retries
            status = error.response.status_code if error.response is not None else 0
            raise DeliveryError(_refusal(status, None), unsent=list(events)) from None
        except requests.RequestException as error:
            why = str(error) if isinstance(error, timebound.OutOfTime) else wire.cause(error)
            raise DeliveryError(f"Could not reach the OpenLineage backend ({why}); check "
                                "OPENLINEAGE_URL.", unsent=list(events)) from None
        finally:
            transport.close()
        return outcome


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _refusal(status: int, location: str | None, what: str | None = None) -> str:
    if 200 <= status < 300:  # something in front of the backend answered at the very URL
        return (f"The OpenLineage backend answered {status} with {what}, not the backend's answer, which is "
                "not delivery: check OPENLINEAGE_URL and OPENLINEAGE_ENDPOINT (a login proxy in front of it?).")
    if 300 <= status < 400:
        where = (location or "nowhere said").split("?", 1)[0]  # not cut before the line is masked
        return (f"The OpenLineage backend answered {status}, a redirect to {where}, which is not delivery: "
                "check OPENLINEAGE_URL and OPENLINEAGE_ENDPOINT (a login proxy in front of it?).")
    return (f"The OpenLineage backend answered {status}; check OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT and "
            "OPENLINEAGE_API_KEY.")


class LifecycleFile:
    """Lifecycle events appended to a file, one JSON document a line (not --output's JSON array)."""

    name = "file"

    def __init__(self, path: str):
        self.path = path
        self.transport = FileTransport(FileConfig(log_file_path=path, append=True))

    def send(self, events: Sequence[dict]) -> Outcome:
        converted = lifecycle(events)
        try:
            if filecheck.special(self.path):
                self._write_through(converted)
            else:
                for event in converted:
                    self.transport.emit(_event(event))
        except RuntimeError as error:  # openlineage-python's file transport says every failure so
            raise DeliveryError(f"Cannot write {self.path}: {error}.", unsent=list(events)) from None
        except OSError as error:
            why = "it is a named pipe (FIFO) nobody reads; read it, or set --target-file to a file" \
                if error.errno == errno.ENXIO else (error.strerror or type(error).__name__)
            raise DeliveryError(f"Cannot write {self.path}: {why}.", unsent=list(events)) from None
        return Outcome(name=self.name, where=self.path, sent=len(converted), runs=len(events))

    def _write_through(self, converted: Sequence[dict]) -> None:
        """A FIFO or a device, opened once: the transport opens the file for every event, and a
        FIFO's reader ends at the first close, so the next open would wait for ever. Opened without
        waiting: a FIFO nobody reads fails at once (ENXIO). The lines are the transport's own."""
        fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for event in converted:
                handle.write(Serde.to_json(_event(event)) + "\n")
            handle.flush()  # a full device fails here, not unseen at close


class _Strict(logging.StreamHandler):
    """A handler that lets a failed write out (logging's own prints it and goes on): a closed stdout
    is no delivery. It counts what it wrote: a record logging dropped (logging.disable) is none."""

    written = 0

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.written += 1

    def handleError(self, record: logging.LogRecord) -> None:
        raise  # logging calls it inside its except: this is the write's own error


class Console:
    name = "console"

    def send(self, events: Sequence[dict]) -> Outcome:
        try:
            return self._print(events)
        except (OSError, ValueError) as error:  # a closed or broken stdout (ValueError: closed file)
            raise DeliveryError(f"Could not print the events to stdout ({type(error).__name__}); nothing "
                                "that reads it got them.", unsent=list(events)) from None

    def _print(self, events: Sequence[dict]) -> Outcome:
        # openlineage's console transport logs at INFO; show exactly those lines on stdout.
        logger = logging.getLogger("openlineage.client.transport.console")
        handler = _Strict(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        disabled, logger.disabled = logger.disabled, False  # dictConfig disables loggers made before it
        try:
            transport = ConsoleTransport(ConsoleConfig())
            converted = lifecycle(events)
            for event in converted:
                transport.emit(_event(event))
            handler.flush()  # a pipe closed by its reader fails here, not at exit
        finally:
            logger.removeHandler(handler)
            logger.disabled = disabled
        if handler.written < len(converted):  # only what reached stdout is delivered
            raise DeliveryError(f"Only {handler.written} of the {len(converted)} events reached stdout (logging is "
                                "disabled in this process); nothing that reads it got the rest.", unsent=list(events))
        return Outcome(name=self.name, where="stdout", sent=len(converted), runs=len(events))
