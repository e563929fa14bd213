"""Targets for any OpenLineage backend, through openlineage-python's own transports (the optional
`openlineage` extra; reporter.delivery imports this module only when one of them is chosen).

`openlineage` posts each run's lifecycle (START, then COMPLETE/FAIL/ABORT) to a standard HTTP
endpoint configured as openlineage-python reads it: OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT,
OPENLINEAGE_API_KEY. `file` appends the lifecycle events to a file, one JSON document a line;
`console` prints them. Each is a delivery.Target.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence

import requests
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport

from reporter.delivery import Outcome
from reporter.errors import ConfigError, DeliveryError
from reporter.events import lifecycle
from reporter.settings import check_url

# Bounded like Databand's delivery: a few quick retries, never minutes.
RETRY = {"total": 4, "connect": 4, "read": 2, "backoff_factor": 0.5, "backoff_max": 10,
         "status_forcelist": [429, 500, 502, 503, 504], "allowed_methods": ["POST"],
         "respect_retry_after_header": True}
TIMEOUT = 10.0


class OpenLineageHttp:
    name = "openlineage"

    def __init__(self, env: Mapping[str, str], verify: bool | str = True):
        url = check_url(env.get("OPENLINEAGE_URL"), "OPENLINEAGE_URL", "http://marquez:5000")
        params: dict = {"url": url, "timeout": TIMEOUT, "retry": RETRY, "verify": verify is not False}
        if env.get("OPENLINEAGE_ENDPOINT"):
            params["endpoint"] = env["OPENLINEAGE_ENDPOINT"]
        if env.get("OPENLINEAGE_API_KEY"):
            params["auth"] = {"type": "api_key", "apiKey": env["OPENLINEAGE_API_KEY"]}
        if isinstance(verify, str):
            params["sslContext"] = {"caCertPath": verify}
        self.transport = HttpTransport(HttpConfig.from_dict(params))
        self.where = url.rstrip("/") + "/" + self.transport.endpoint.lstrip("/")

    def describe(self) -> str:
        return self.where

    def send(self, events: Sequence[dict]) -> Outcome:
        outcome = Outcome(target=self.where)
        try:
            for event in lifecycle(events):
                self.transport.emit(event)  # one event a request: the spec's API has no batch
                outcome.sent += 1
                outcome.requests += 1
        except requests.HTTPError as error:
            raise DeliveryError(f"The OpenLineage backend answered {error.response.status_code}; check "
                                "OPENLINEAGE_URL, OPENLINEAGE_ENDPOINT and OPENLINEAGE_API_KEY.", unsent=events) from None
        except requests.RequestException as error:
            raise DeliveryError(f"Could not reach the OpenLineage backend ({type(error).__name__}).",
                                unsent=events) from None
        finally:
            self.transport.close()
        return outcome


class LifecycleFile:
    """Lifecycle events appended to a file, one JSON document a line (not --output's JSON array)."""

    name = "file"

    def __init__(self, path: str):
        self.path = path
        self.transport = FileTransport(FileConfig(log_file_path=path, append=True))

    def describe(self) -> str:
        return self.path

    def send(self, events: Sequence[dict]) -> Outcome:
        converted = lifecycle(events)
        try:
            for event in converted:
                self.transport.emit(event)
        except RuntimeError as error:
            raise DeliveryError(f"Cannot write {self.path}: {error}.", unsent=list(events)) from None
        return Outcome(target=self.path, sent=len(converted))


class Console:
    name = "console"

    def describe(self) -> str:
        return "stdout"

    def send(self, events: Sequence[dict]) -> Outcome:
        # openlineage's console transport logs at INFO; show exactly those lines on stdout.
        logger = logging.getLogger("openlineage.client.transport.console")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            transport = ConsoleTransport(ConsoleConfig())
            converted = lifecycle(events)
            for event in converted:
                transport.emit(event)
        finally:
            logger.removeHandler(handler)
        return Outcome(target="stdout", sent=len(converted))


def make(name: str, *, file_path: str | None, verify: bool | str, env: Mapping[str, str]):
    if name == "openlineage":
        return OpenLineageHttp(env, verify=verify)
    if name == "file":
        return LifecycleFile(file_path or "openlineage-events.ndjson")
    if name == "console":
        return Console()
    raise ConfigError(f"Unknown target {name!r}: use databand, openlineage, file or console.")
