"""Databand's rule for every target: an event is delivered only when the very endpoint asked took
it (a 2xx of that URL, never of one a redirect points to; for the console, what reached stdout),
and every other event is kept."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
from clirun import QUICK
from hostile import Recorder
from werkzeug.wrappers import Response

from reporter import databand as databand_module
from reporter import delivery

pytest.importorskip("openlineage.client")
from reporter import transports  # noqa: E402

EVENTS = [{"eventType": "COMPLETE", "eventTime": "2026-11-20T10:00:00Z", "producer": "https://example.com/p",
           "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent",
           "run": {"runId": "01890000-0000-7000-8000-000000000001", "facets": {}},
           "job": {"namespace": "gitlab:example", "name": "acme.dp", "facets": {}}, "inputs": [], "outputs": []}]


class Redirecting(Recorder):
    """Answers every request with `status` and a Location on another server."""

    def __init__(self, status: int, location: str):
        super().__init__()
        self.status, self.location = status, location

    def _handle(self, request):
        super()._handle(request)
        return Response(b"", status=self.status, headers={"Location": self.location})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("kind", ["databand", "openlineage"])
def test_a_2xx_from_where_a_redirect_points_is_never_delivery(kind, status, tmp_path):
    with Recorder(b"{}", "application/json") as login, Redirecting(status, "") as endpoint:
        endpoint.location = f"{login.url}/api/v1/lineage"  # a 200 there, for anything
        target = databand_module.Databand(endpoint.url + "/api/v1/tracking/open-lineage/u/events/bulk", "tok",
                                          bounds=QUICK) if kind == "databand" else \
            transports.OpenLineageHttp({"OPENLINEAGE_URL": endpoint.url, "OPENLINEAGE_API_KEY": "key"}, bounds=QUICK)
        done = delivery.deliver([target], EVENTS, 9001, keep_dir=str(tmp_path))
    assert login.seen == [], "the redirect was followed"
    assert len(endpoint.seen) == 1, "a redirect is a refusal: not retried"
    [failure] = done.failures
    assert f"{status}" in failure.reason and "redirect" in failure.reason and "not delivery" in failure.reason
    assert done.outcomes == []
    assert json.loads(Path(failure.kept).read_text()) == EVENTS


def stdout_here(monkeypatch) -> io.StringIO:
    """stdout, replaced in the test's body (pytest puts its own back between setup and the call)."""
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stdout", captured)
    return captured


def test_the_console_prints_even_where_logging_config_disabled_its_logger(monkeypatch, tmp_path):
    printed = stdout_here(monkeypatch)
    # logging.config.dictConfig disables every logger made before it (disable_existing_loggers).
    logger = logging.getLogger("openlineage.client.transport.console")
    logger.disabled = True
    try:
        done = delivery.deliver([transports.Console()], EVENTS, 9001, keep_dir=str(tmp_path))
    finally:
        logger.disabled = False
    assert done.ok
    assert [json.loads(line)["run"]["runId"] for line in printed.getvalue().splitlines()] == \
        [EVENTS[0]["run"]["runId"]] * 2  # its START and its COMPLETE
    assert logger.disabled is False


def test_the_console_never_counts_what_logging_dropped(monkeypatch, tmp_path):
    printed = stdout_here(monkeypatch)
    logging.disable(logging.CRITICAL)
    try:
        done = delivery.deliver([transports.Console()], EVENTS, 9001, keep_dir=str(tmp_path))
    finally:
        logging.disable(logging.NOTSET)
    assert printed.getvalue() == ""
    [failure] = done.failures
    assert "Only 0 of the 2 events reached stdout" in failure.reason
    assert json.loads(Path(failure.kept).read_text()) == EVENTS


def test_a_closed_stdout_is_not_delivery(tmp_path, monkeypatch):
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stdout", closed)
    done = delivery.deliver([transports.Console()], EVENTS, 9001, keep_dir=str(tmp_path))
    [failure] = done.failures
    assert "Could not print the events to stdout" in failure.reason and failure.kept


def test_a_file_target_that_cannot_be_written_is_not_delivery(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    done = delivery.deliver([transports.LifecycleFile(str(folder))], EVENTS, 9001, keep_dir=str(tmp_path))
    [failure] = done.failures
    assert f"Cannot write {folder}" in failure.reason and failure.kept


def _target(kind: str, url: str):
    if kind == "databand":
        return databand_module.Databand(url + "/api/v1/tracking/open-lineage/u/events/bulk", "tok", bounds=QUICK)
    return transports.OpenLineageHttp({"OPENLINEAGE_URL": url, "OPENLINEAGE_API_KEY": "key"}, bounds=QUICK)


NOT_AN_ANSWER = {  # 200 at the very URL, from something in front of the backend
    "garbage": (b"\x00\xffgarbage\x9c", "application/octet-stream"),
    "text": (b"OK", "text/plain"),
    "json type, not json": (b"Service unavailable", "application/json"),
    "cut json": (b'{"status": "acc', "application/json"),
    "html": (b"<html><body>Sign in</body></html>", "text/html; charset=utf-8"),
    "long text": (b"x" * (200 * 1024), "text/plain"),
    "long blanks": (b" " * (200 * 1024), "text/plain"),  # its start is blank, but it is no empty answer
}


@pytest.mark.parametrize("body, content_type", NOT_AN_ANSWER.values(), ids=NOT_AN_ANSWER.keys())
@pytest.mark.parametrize("kind", ["databand", "openlineage"])
def test_a_2xx_whose_body_is_not_json_is_not_delivery(kind, body, content_type, tmp_path):
    with Recorder(body, content_type) as endpoint:
        done = delivery.deliver([_target(kind, endpoint.url)], EVENTS, 9001, keep_dir=str(tmp_path))
    assert done.outcomes == []
    [failure] = done.failures
    assert "200 with" in failure.reason and "not delivery" in failure.reason
    assert json.loads(Path(failure.kept).read_text()) == EVENTS


BACKEND_ANSWERS = {  # what Databand and an OpenLineage backend answer: delivery
    "empty": (b"", "application/json"),
    "empty text": (b"", "text/plain"),
    "blank": (b"\r\n", "text/plain"),
    "json object": (b'{"status": "ok"}', "application/json; charset=utf-8"),
    "json list": (b"[]", "application/json"),
    "json as text": (b"{}", "text/plain"),
    "long json": (b'{"x": "' + b"y" * (200 * 1024) + b'"}', "application/json"),
}


@pytest.mark.parametrize("body, content_type", BACKEND_ANSWERS.values(), ids=BACKEND_ANSWERS.keys())
@pytest.mark.parametrize("kind", ["databand", "openlineage"])
def test_a_2xx_with_an_empty_or_json_body_is_delivery(kind, body, content_type, tmp_path):
    with Recorder(body, content_type) as endpoint:
        done = delivery.deliver([_target(kind, endpoint.url)], EVENTS, 9001, keep_dir=str(tmp_path))
    assert done.ok, done.message()
    assert done.outcomes[0].sent >= 1
