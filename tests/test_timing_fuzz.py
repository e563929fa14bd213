"""Property: random timing faults never hold a command past its bounds. Servers on 127.0.0.1 answer
429 or 5xx with Retry-After and RateLimit-Reset of every kind (huge, negative, "nan", "inf",
garbage, HTTP dates past and far future, an epoch an hour away), stall before answering, reset the
connection, or trickle their status line a byte at a time; the delivery to Databand and to an
OpenLineage backend, and GitLab's reading, each end within their stated bound (reporter/targets.py
Bounds: budget + one attempt; --gitlab-timeout for GitLab) plus a small slack, with the events
delivered or kept. The bounds are made small so examples are quick; the rules are the same as the
documented ones, only scaled.

Budget (`ci` profile, fixed seed): 12 examples per target, each at most its bound (about 4 s),
about 40 s in all; `long`: 120 each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pipelines
import pytest
from fuzzing import examples
from hostile import HostileGitLab, TrickleServer, trickled
from hypothesis import given, settings
from hypothesis import strategies as st
from standins import DatabandStandIn

from reporter import databand as databand_module
from reporter import delivery
from reporter import report as lib
from reporter.errors import GitLabError
from reporter.retry import RetryPolicy
from reporter.settings import ReadBounds, Settings
from reporter.targets import Bounds

POLICY = RetryPolicy(backoff=0.05, backoff_max=0.4, longest_wait=1.0, budget=2.0)
BOUNDS = Bounds(retry=POLICY, attempt=1.0, connect=0.5, read=0.5)
SLACK = 1.5  # a loaded machine's scheduling, thread start-up, the kept file's write

WAITS = st.one_of(
    st.integers(-10**6, 10**12).map(str), st.sampled_from(["nan", "inf", "-inf", "1e400", "soon", "", "  7 ",
                                                           "Wed, 21 Oct 2015 07:28:00 GMT",
                                                           "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 32 Foo 2026"]),
    st.floats(-1e6, 1e6).map(repr),
)


@st.composite
def answers(draw):
    """A Databand stand-in script: what each attempt meets, in order."""
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["status", "status", "stall", "reset", "ok"]))
        headers = {}
        if draw(st.booleans()):
            headers["Retry-After"] = draw(WAITS)
        if draw(st.booleans()):
            headers["RateLimit-Reset"] = draw(st.one_of(WAITS, st.just(str(int(time.time()) + 3600))))
        if kind == "status":
            steps.append({"status": draw(st.sampled_from([429, 500, 502, 503, 504])), "headers": headers})
        elif kind == "stall":
            steps.append({"delay": draw(st.floats(0.1, 2.5)), "headers": headers})
        elif kind == "reset":
            steps.append({"reset": True})
        else:
            steps.append({"status": 200, "headers": headers})
    return steps


def events_of_a_pipeline():
    with HostileGitLab() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        return list(lib.collect(Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token), 42, 9001).events)


@pytest.fixture(scope="module")
def events():
    return events_of_a_pipeline()


def delivered_or_kept(done, events, tmp_path) -> None:
    if done.failures:
        [failure] = done.failures
        assert failure.kept and len(json.loads(Path(failure.kept).read_text())) >= 1
        assert "nan" not in failure.reason


@settings(max_examples=examples(12))
@given(script=answers(), trickle=st.one_of(st.none(), st.floats(0.05, 0.5)))
def test_databand_delivery_ends_within_its_bound(events, tmp_path_factory, script, trickle):
    said: list[str] = []
    folder = tmp_path_factory.mktemp("kept")
    if trickle is not None:  # a status line and headers a byte at a time, never an answer
        with TrickleServer(every=trickle) as server:
            target = databand_module.Databand(server.url, "tok", bounds=BOUNDS, say=said.append)
            started = time.monotonic()
            done = delivery.deliver([target], events, 9001, keep_dir=str(folder))
    else:
        with DatabandStandIn() as server:
            server.script(*script)
            target = databand_module.Databand(server.url, server.token, bounds=BOUNDS, say=said.append)
            started = time.monotonic()
            done = delivery.deliver([target], events, 9001, keep_dir=str(folder))
    elapsed = time.monotonic() - started
    assert elapsed <= BOUNDS.retry.budget + BOUNDS.attempt + SLACK, (elapsed, script, trickle)
    delivered_or_kept(done, events, folder)
    assert not any("nan" in line or "inf s" in line for line in said), said


@settings(max_examples=examples(12))
@given(script=answers())
def test_openlineage_delivery_ends_within_its_bound(events, tmp_path_factory, script):
    transports = pytest.importorskip("reporter.transports")
    folder = tmp_path_factory.mktemp("kept")
    with DatabandStandIn() as server:  # scripted answers whatever the path: an OpenLineage backend here
        server.script(*script)
        target = transports.OpenLineageHttp({"OPENLINEAGE_URL": server.server_url}, bounds=BOUNDS)
        started = time.monotonic()
        done = delivery.deliver([target], events[:3], 9001, keep_dir=str(folder))
        elapsed = time.monotonic() - started
    assert elapsed <= BOUNDS.retry.budget + BOUNDS.attempt + SLACK, (elapsed, script)
    delivered_or_kept(done, events[:3], folder)


GITLAB_TIMEOUT = 3.0
READS = ReadBounds(read=1.5, log=1.0, log_cut=1.5, tests_lag=0)


@settings(max_examples=examples(12))
@given(data=st.data())
def test_gitlab_reading_ends_within_its_budget(data):
    with HostileGitLab() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        path = data.draw(st.sampled_from([r"/jobs$", r"/bridges$", r"/pipelines/9001$", r"/trace$"]), label="path")
        fault = data.draw(st.sampled_from(["status", "trickle", "stall"]), label="fault")
        if fault == "status":
            headers = {}
            for name in ("Retry-After", "RateLimit-Reset"):
                if data.draw(st.booleans(), label=name):
                    headers[name] = data.draw(WAITS, label=f"{name} value")
            gitlab.fail(path, data.draw(st.sampled_from([429, 500, 502, 503]), label="status"),
                        times=data.draw(st.integers(1, 8), label="times"), headers=headers)
        else:
            every = data.draw(st.floats(0.05, 0.5), label="every") if fault == "trickle" else 30.0
            gitlab.on(path.replace("$", r"(\?|$)"), lambda request: trickled(b"[", b"]" * 40, gitlab.stopping(),
                                                                        every=every), times=1)
        settings_ = Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, gitlab_timeout=GITLAB_TIMEOUT,
                             gitlab_policy=POLICY, gitlab_bounds=READS)
        started = time.monotonic()
        try:
            report = lib.collect(settings_, 42, 9001)
        except GitLabError as error:
            assert "nan" not in str(error) and "inf s" not in str(error), error
            report = None
        elapsed = time.monotonic() - started
    assert elapsed <= GITLAB_TIMEOUT + SLACK, (elapsed, path, fault)
    if report is not None:
        assert report.events


def test_a_gitlab_retry_after_of_nan_is_a_wait_not_a_deadline_of_nan(databand, workdir):
    # float("nan") reads it; added to a read's deadline it ended the read at once ("too slow").
    with HostileGitLab() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        gitlab.fail(r"/jobs$", 429, headers={"Retry-After": "nan"})
        said: list[str] = []
        report = lib.collect(Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, gitlab_policy=POLICY,
                                      progress=said.append), 42, 9001)
    assert report.pipeline.jobs
    assert said and not any("nan" in line for line in said), said


def test_a_databand_retry_after_of_nan_waits_as_an_unreadable_one(events, tmp_path):
    with DatabandStandIn() as server:
        server.script({"status": 503, "headers": {"Retry-After": "nan"}})
        said: list[str] = []
        target = databand_module.Databand(server.url, server.token, bounds=BOUNDS, say=said.append)
        done = delivery.deliver([target], events, 9001, keep_dir=str(tmp_path))
    assert done.ok
    assert said == ["Databand: attempt 1 failed (HTTP 503); trying again in 1 s (2 s left to retry)"]


@pytest.mark.parametrize("value", ["soon", "nan", "Mon, 32 Foo 2026"])
def test_an_openlineage_retry_after_that_is_no_number_nor_date_is_waited_as_unreadable(value, tmp_path):
    transports = pytest.importorskip("reporter.transports")
    events = [{"eventType": "COMPLETE", "eventTime": "2026-11-20T10:00:00Z", "producer": "https://example.com/p",
               "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent",
               "run": {"runId": "01890000-0000-7000-8000-000000000001", "facets": {}},
               "job": {"namespace": "n", "name": "j", "facets": {}}, "inputs": [], "outputs": []}]
    with DatabandStandIn() as server:
        server.script({"status": 503, "headers": {"Retry-After": value}}, 200, 200)
        target = transports.OpenLineageHttp({"OPENLINEAGE_URL": server.server_url}, bounds=BOUNDS)
        started = time.monotonic()
        done = delivery.deliver([target], events, 9001, keep_dir=str(tmp_path))
        elapsed = time.monotonic() - started
        seen = server.requests_seen
    assert done.ok, done.message()  # urllib3 refused the header: "Could not reach the OpenLineage backend"
    assert seen == 3 and POLICY.longest_wait * 0.9 <= elapsed < POLICY.longest_wait + SLACK
