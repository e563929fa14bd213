"""Other OpenLineage backends: proper run lifecycles through openlineage-python's transports."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import replace

import pytest
from click.testing import CliRunner
from werkzeug.wrappers import Response

import olschema
import pipelines
from clirun import QUICK, quick
from hostile import TrickleServer
from reporter.cli import cli


@pytest.fixture
def mixed(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


@pytest.fixture
def receiver(httpserver):
    """A standard OpenLineage HTTP endpoint: one event a POST, Bearer API key."""
    received: list[dict] = []
    auth: list[str] = []

    def handle(request):
        auth.append(request.headers.get("Authorization", ""))
        received.append(json.loads(request.get_data()))
        return Response("", status=201)

    httpserver.expect_request("/lineage/v1", method="POST").respond_with_handler(handle)
    httpserver.received, httpserver.auth = received, auth
    return httpserver


def env(gitlab, databand=None, receiver=None):
    values = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}
    if databand:
        values.update(DATABAND_URL=databand.url, DATABAND_ACCESS_TOKEN=databand.token)
    if receiver:
        values.update(OPENLINEAGE_URL=receiver.url_for("/"), OPENLINEAGE_ENDPOINT="lineage/v1",
                      OPENLINEAGE_API_KEY="ol-api-key-0001")
    return values


def resend(values, *args, bounds=QUICK):
    return CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001", *args], env=values,
                              catch_exceptions=False, obj=quick(bounds))


def assert_lifecycles(events):
    by_run = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event["eventType"])
    for run_id, kinds in by_run.items():
        assert kinds[0] == "START", (run_id, kinds)
        assert len(kinds) <= 2
        if len(kinds) == 2:
            assert kinds[1] in ("COMPLETE", "FAIL", "ABORT", "RUNNING", "OTHER")
    return by_run


def test_openlineage_backend_gets_start_and_end_of_every_run(gitlab, mixed, receiver):
    result = resend(env(gitlab, receiver=receiver), "--target", "openlineage")
    assert result.exit_code == 0, result.output
    events = receiver.received
    olschema.assert_valid(events)
    by_run = assert_lifecycles(events)
    assert len(by_run) == 16
    assert set(receiver.auth) == {"Bearer ol-api-key-0001"}
    # parents start before their children, and end after them
    order = [(e["run"]["runId"], e["eventType"]) for e in events]
    root = events[0]["run"]["runId"]
    assert order[0] == (root, "START") and order[-1][0] == root
    starts = [e for e in events if e["eventType"] == "START"]
    assert all("log" not in e["run"]["facets"] and "errorMessage" not in e["run"]["facets"] for e in starts)


def test_databand_and_openlineage_at_once(gitlab, databand, mixed, receiver):
    result = resend(env(gitlab, databand, receiver), "--target", "databand", "--target", "openlineage")
    assert result.exit_code == 0, result.output
    assert len(databand.events) == 16
    assert len({e["run"]["runId"] for e in receiver.received}) == 16
    # Databand by its host only (the bulk endpoint's path names the integration); the other by its URL.
    assert f"Databand at {databand.url.split('/')[2]}" in result.stderr and databand.url not in result.stderr
    assert "lineage/v1" in result.stderr


def test_openlineage_down_keeps_its_events_and_databand_still_gets_them(gitlab, databand, mixed, tmp_path,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = env(gitlab, databand)
    values["OPENLINEAGE_URL"] = "http://127.0.0.1:9"  # discard port: nothing listens
    result = resend(values, "--target", "databand", "--target", "openlineage")
    assert result.exit_code == 4
    assert len(databand.events) == 16
    [kept] = tmp_path.glob("openlineage-unsent-9001-*.json")
    assert f"--from-file {kept.name} --target openlineage" in result.stderr
    assert "Could not reach the OpenLineage backend (connection refused)" in result.stderr


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_delivered_to_openlineage(gitlab, mixed, httpserver, tmp_path, monkeypatch, status):
    monkeypatch.chdir(tmp_path)
    landed: list[str] = []
    httpserver.expect_request("/lineage/v1").respond_with_response(
        Response("", status=status, headers={"Location": httpserver.url_for("/login?state=s3cret")}))
    httpserver.expect_request("/login").respond_with_handler(
        lambda request: landed.append(request.method) or Response("<html>Sign in</html>", status=200))
    values = env(gitlab)
    values.update(OPENLINEAGE_URL=httpserver.url_for("/"), OPENLINEAGE_ENDPOINT="lineage/v1")
    result = resend(values, "--target", "openlineage")
    assert result.exit_code == 4
    assert landed == []  # the login page was never asked for, so never taken for an answer
    assert f"answered {status}, a redirect to {httpserver.url_for('/login')}, which is not delivery" in result.stderr
    assert "s3cret" not in result.stderr
    [kept] = tmp_path.glob("openlineage-unsent-9001-*.json")
    assert len(json.loads(kept.read_text())) == 16


def test_a_trickled_openlineage_answer_is_cut_at_the_budget(gitlab, mixed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with TrickleServer() as slow:  # a status line a byte at a time, never finished
        values = env(gitlab)
        values.update(OPENLINEAGE_URL=slow.url.split("/api/")[0] + "/", OPENLINEAGE_ENDPOINT="lineage/v1")
        started = time.monotonic()
        result = resend(values, "--target", "openlineage")
        took = time.monotonic() - started
    assert result.exit_code == 4
    assert "no complete answer within" in result.stderr
    assert took < QUICK.retry.budget + 2
    assert len(list(tmp_path.glob("openlineage-unsent-9001-*.json"))) == 1


def test_openlineage_retry_after_is_capped_by_the_policy(gitlab, mixed, httpserver):
    answers = [Response("", status=429, headers={"Retry-After": "3600"})]
    received: list[dict] = []

    def handle(request):
        if answers:
            return answers.pop()
        received.append(json.loads(request.get_data()))
        return Response("", status=201)

    httpserver.expect_request("/lineage/v1", method="POST").respond_with_handler(handle)
    values = env(gitlab)
    values.update(OPENLINEAGE_URL=httpserver.url_for("/"), OPENLINEAGE_ENDPOINT="lineage/v1")
    bounds = replace(QUICK, retry=replace(QUICK.retry, longest_wait=0.5, budget=10))
    started = time.monotonic()
    result = resend(values, "--target", "openlineage", bounds=bounds)
    assert result.exit_code == 0, result.output
    assert 0.5 <= time.monotonic() - started < 5  # waited as asked, but only as long as the policy allows
    assert len(received) == 32


def test_file_and_console_targets(gitlab, mixed, tmp_path):
    path = tmp_path / "lineage.ndjson"
    result = resend(env(gitlab), "--target", "file", "--target-file", str(path), "--target", "console")
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in path.read_text().splitlines()]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert written == printed
    olschema.assert_valid(written)
    assert len(assert_lifecycles(written)) == 16


def test_openlineage_target_needs_its_url(gitlab, mixed):
    result = resend(env(gitlab), "--target", "openlineage")
    assert result.exit_code == 2 and "OPENLINEAGE_URL" in result.stderr


def test_without_the_openlineage_extra_the_target_says_how_to_install_it(gitlab, mixed, tmp_path):
    import subprocess
    import sys

    # openlineage-python made unimportable, as in an install without the extra.
    code = ("import sys; sys.modules['openlineage'] = None; from reporter.cli import main; "
            "sys.argv = ['databand-gitlab-reporter', 'resend', '--project', '42', '--pipeline', '9001', "
            "'--target', 'console']; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert "pip install 'databand-gitlab-reporter[openlineage]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_core_imports_no_openlineage():
    import subprocess
    import sys

    code = ("import sys; import reporter.cli, reporter.report, reporter.events, reporter.delivery; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openlineage', 'attr', 'attrs')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_other_targets_summary_names_them_and_counts_alike(gitlab, mixed, tmp_path):
    path = tmp_path / "lineage.ndjson"
    result = resend(env(gitlab), "--target", "file", "--target-file", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    # 16 runs built, each written as its START and its end: the title and the line agree
    assert "OpenLineage file: pipeline 9001 running, 16 runs sent" in lines
    assert f"  Wrote 32 events (the start and the end of 16 runs) to {path}" in lines
    assert not any(line.startswith("Databand") for line in lines)
    assert len(path.read_text().splitlines()) == 32


def test_databand_with_another_target_names_both(gitlab, databand, mixed, receiver):
    result = resend(env(gitlab, databand, receiver), "--target", "databand", "--target", "openlineage")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert "Databand + OpenLineage: pipeline 9001 running, 16 runs sent" in lines
    assert f"  Sent 16 events in 1 request to Databand at {databand.url.split('/')[2]}" in lines
    assert any(line.startswith("  Sent 32 events (the start and the end of 16 runs) in 32 requests to http://")
               for line in lines)


def test_console_to_a_closed_pipe_is_no_delivery(gitlab, mixed, tmp_path):
    import os
    import subprocess
    import sys

    executable = os.path.join(os.path.dirname(sys.executable), "databand-gitlab-reporter")
    process = subprocess.Popen([executable, "resend", "--project", "42", "--pipeline", "9001", "--target", "console"],
                               env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "PATH": "/usr/bin:/bin"},
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first line
    err = process.stderr.read()
    assert process.wait(timeout=60) == 4, err
    assert "Could not print the events to stdout (BrokenPipeError)" in err and "Traceback" not in err
    [kept] = tmp_path.glob("console-unsent-9001-*.json")
    assert len(json.loads(kept.read_text())) == 16


@pytest.mark.parametrize("endpoint", ["https://elsewhere.example.com/api/v1/lineage", "//elsewhere.example.com/x"])
def test_an_endpoint_on_another_host_is_refused_before_gitlab_is_read(gitlab, mixed, endpoint):
    values = env(gitlab)
    values.update(OPENLINEAGE_URL="http://marquez.example.com:5000", OPENLINEAGE_ENDPOINT=endpoint,
                  OPENLINEAGE_API_KEY="ol-api-key-0002")
    result = resend(values, "--target", "openlineage")
    assert result.exit_code == 2
    assert "OPENLINEAGE_ENDPOINT must be a path on OPENLINEAGE_URL's host" in result.stderr
    assert "ol-api-key-0002" not in result.output
    assert gitlab.requests == []


def test_an_openlineage_host_that_does_not_resolve_is_not_retried(gitlab, mixed, tmp_path, monkeypatch):
    from reporter.targets import BOUNDS

    monkeypatch.chdir(tmp_path)
    values = env(gitlab)
    values.update(OPENLINEAGE_URL="http://marquez.invalid:5000")  # .invalid never resolves (RFC 6761)
    started = time.monotonic()
    result = resend(values, "--target", "openlineage", bounds=BOUNDS)  # the real policy: seconds of backoff
    assert result.exit_code == 4
    assert time.monotonic() - started < 5
    assert "Could not reach the OpenLineage backend (the host name does not resolve (DNS)); check " \
           "OPENLINEAGE_URL." in result.stderr
    assert len(list(tmp_path.glob("openlineage-unsent-9001-*.json"))) == 1
