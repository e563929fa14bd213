"""Servers on a bad day: redirects, trickles, loops, shifting pages, HTML and wrong JSON types, TLS
with a self-signed certificate, a full disk, a read-only folder, SIGTERM and SIGINT.

For every case: the exit code, the message, the time taken (bounded, generous margins), what
Databand received and what was kept. All servers are real, on 127.0.0.1 (tests/hostile.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from werkzeug.wrappers import Response

from clirun import QUICK as DELIVERY
from clirun import env_for
from clirun import resend as run
import pipelines
from hostile import HostileGitLab, Recorder, TrickleServer, self_signed, serve_tls, trickled, wait_until
from reporter import delivery
from reporter import report as lib
from reporter.databand import Databand
from reporter.errors import GitLabError
from reporter.retry import POLICY
from reporter.settings import GITLAB_CONCURRENCY as IN_FLIGHT
from reporter.settings import ReadBounds, Settings
from reporter.cli import cli
from standins import DatabandStandIn, GitLabStandIn, generate_pipeline, failed_only, make_bridge, make_job, \
    make_pipeline, make_project, unfiltered

EVENTS_OF_MIXED = 16  # the root, 4 stages, 10 job attempts and the bridge
PIPELINE_PATH = "/api/v4/projects/42/pipelines/9001"


QUICK = ReadBounds(read=2, log=1, log_cut=1.5)  # the real bounds are tens of seconds


def collect(gitlab, pipeline=9001, **settings):
    """The library's read of a pipeline with short bounds and no real backoff: (report, seconds)."""
    given = {"gitlab_bounds": QUICK, "gitlab_policy": POLICY.faster(0.01), **settings}
    started = time.monotonic()
    report = lib.collect(Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, **given), 42, pipeline)
    return report, time.monotonic() - started


def refused(gitlab, pipeline=9001, **settings):
    """The GitLabError a read ends with, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(GitLabError) as error:
        collect(gitlab, pipeline, **settings)
    return str(error.value), time.monotonic() - started


@pytest.fixture
def hostile():
    with HostileGitLab() as server:
        yield server


@pytest.fixture
def mixed(hostile):
    return pipelines.mixed(hostile.url).install(hostile)


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "error:" in line]


def kept_files(folder, prefix="databand"):
    return sorted(folder.glob(f"{prefix}-unsent-*.json"))


def assert_one_clear_line(result, *words):
    [line] = errors(result)
    for word in words:
        assert word in line, line
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr
    return line


# -- GitLab redirects ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_gitlab_redirect_within_its_origin_is_followed(hostile, databand, mixed, workdir, status):
    # The same pipeline under the project's path: GitLab's own redirect after a project moved.
    hostile.on(rf"^{PIPELINE_PATH}$", lambda r: Response(status=status, headers={
        "Location": f"{hostile.url}/api/v4/projects/acme%2Fdata-platform/pipelines/9001"}), times=1)
    result = run(env_for(hostile, databand))
    assert result.exit_code == 0, result.output
    assert len(databand.events) == EVENTS_OF_MIXED
    assert kept_files(workdir) == []


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("elsewhere", ["port", "host"])
def test_gitlab_redirect_elsewhere_is_refused_and_the_token_stays_home(hostile, databand, mixed, workdir,
                                                                        status, elsewhere):
    with Recorder(body=b"[]", content_type="application/json") as other:
        target = other.url if elsewhere == "port" else other.url.replace("127.0.0.1", "localhost")
        hostile.on(r"/jobs\?", lambda r: Response(status=status, headers={"Location": f"{target}/steal"}))
        result = run(env_for(hostile, databand))
        assert result.exit_code == 3
        line = assert_one_clear_line(result, "not followed", "GITLAB_URL")
        assert hostile.token not in result.output
        assert other.seen == []  # not one request, so no token
        assert target.replace("http://", "http://") in line
    assert result.elapsed < 5
    assert databand.payloads == [] and kept_files(workdir) == []


def test_gitlab_link_header_elsewhere_is_never_followed(hostile, databand, workdir):
    # Pages are asked for by number: a rel="next" to another host is not even looked at.
    project, pipeline, jobs = generate_pipeline(hostile.url, 150, seed=3)
    hostile.add_pipeline(project, pipeline, jobs)
    with Recorder(body=b"[]", content_type="application/json") as other:
        original = hostile._paginate

        def foreign_links(args, raw_path, items, params):
            response = original(args, raw_path, items, params)
            response.headers["Link"] = f'<{other.url}/api/v4/steal?page=2>; rel="next"'
            del response.headers["X-Total-Pages"]
            return response

        hostile._paginate = foreign_links
        result = run(env_for(hostile, databand), pipeline=str(pipeline["id"]))
        assert result.exit_code == 0, result.output
        assert other.seen == []
    job_runs = [e for e in databand.events if e["job"]["facets"]["jobType"]["jobType"] == "JOB"]
    assert len(job_runs) == 150


def test_gitlab_https_redirect_to_http_is_refused(tmp_path, databand, workdir):
    cert, key = self_signed(tmp_path)
    with HostileGitLab() as gitlab, Recorder(body=b"{}", content_type="application/json") as plain:
        url = serve_tls(gitlab, cert, key)
        sample = pipelines.mixed(url)
        sample.install(gitlab)
        gitlab.on(r"^/api/v4/projects/42/pipelines/9001$",
                  lambda r: Response(status=301, headers={"Location": f"{plain.url}{PIPELINE_PATH}"}))
        env = {"GITLAB_URL": url, "GITLAB_TOKEN": gitlab.token, "CI_SERVER_TLS_CA_FILE": str(cert),
               "DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token}
        result = run(env)
        assert result.exit_code == 3
        assert_one_clear_line(result, "http://127.0.0.1", "plain http, where GitLab's URL is https", "not followed")
        assert plain.seen == []
    assert databand.payloads == []


# -- Databand redirects ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_databand_redirect_is_never_delivery(gitlab, mixed_plain, workdir, status):
    with Recorder() as login, DatabandStandIn() as databand:
        # An SSO proxy: the POST is sent to a login page that would answer 200.
        databand.script({"status": status, "headers": {"Location": f"{login.url}/sso/login?state=s3cr3t"}})
        result = run(env_for(gitlab, databand))
        assert result.exit_code == 4
        line = assert_one_clear_line(result, f"{status} a redirect to {login.url}/sso/login", "DATABAND_URL")
        assert "s3cr3t" not in result.output  # the Location's query is not echoed
        assert login.seen == []  # never followed: the token did not go to the login page
        assert databand.payloads == []
    [kept] = kept_files(workdir)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED
    assert f"resend --from-file {kept.name}" in result.stderr
    assert "within" not in line and result.elapsed < 5


def test_databand_login_page_answering_200_is_not_delivery(gitlab, mixed_plain, workdir):
    # An SSO proxy that serves its login page at the very URL asked, with 200: nothing reached Databand.
    with DatabandStandIn() as databand:
        databand.script({"status": 200, "headers": {"Content-Type": "text/html; charset=utf-8"},
                         "body": "<html><body>Sign in</body></html>"})
        result = run(env_for(gitlab, databand))
        assert result.exit_code == 4
        assert_one_clear_line(result, "200 with an HTML page, not Databand's answer", "DATABAND_URL")
        assert databand.payloads == []
    [kept] = kept_files(workdir)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED


@pytest.mark.parametrize("content_type, body", [("text/plain", "OK"), ("application/json", "Bad gateway"),
                                                ("application/octet-stream", "\x00\x01garbage")])
def test_databand_200_with_a_body_that_is_not_json_is_not_delivery(gitlab, mixed_plain, workdir, content_type, body):
    # A captive portal or a proxy's own text at the very URL: not Databand's answer (empty or JSON).
    with DatabandStandIn() as databand:
        databand.script({"status": 200, "headers": {"Content-Type": content_type}, "body": body})
        result = run(env_for(gitlab, databand))
        assert result.exit_code == 4
        assert_one_clear_line(result, "200 with a body that is not JSON, not Databand's answer", "DATABAND_URL")
    [kept] = kept_files(workdir)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED


@pytest.fixture
def mixed_plain(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


# -- pagination ----------------------------------------------------------------------------


def test_pages_shifting_while_read_lose_and_double_nothing(hostile, databand, workdir):
    project, pipeline, jobs = generate_pipeline(hostile.url, 200, seed=5)  # exactly two full pages
    hostile.add_pipeline(project, pipeline, jobs)
    newest = max(j["id"] for j in jobs) + 1
    inserted = []

    def retry_at_the_head(request):
        # A job is retried while the reporter reads: the new attempt comes first on page 1, every
        # other item moves one place down, and the last one onto a third page.
        if request.args.get("page") == "1" and "scope[]" not in request.args and not inserted:
            job = dict(jobs[0], id=newest, status="running")
            hostile._pipelines[project["id"]][pipeline["id"]].jobs.append(job)
            inserted.append(job)

    hostile.then(r"/jobs", retry_at_the_head)
    result = run(env_for(hostile, databand), pipeline=str(pipeline["id"]))
    assert result.exit_code == 0, result.output
    job_runs = [e for e in databand.events if e["job"]["facets"]["jobType"]["jobType"] == "JOB"]
    names = [e["run"]["runId"] for e in job_runs]
    assert inserted and len(names) == len(set(names))  # no job twice
    assert len(job_runs) == 200  # every job counted when the listing began (the inserted one came later)
    assert hostile.count(r"/jobs$", unfiltered) == 3  # the two pages counted, and the third the shift made
    assert hostile.count(r"/jobs$", failed_only) == 1  # and the failed jobs, beside page 1
    assert result.elapsed < 5 and kept_files(workdir) == []


def test_bridges_shifting_while_read_are_kept_once(hostile, databand, workdir):
    project = make_project(hostile.url)
    pipeline = make_pipeline(project, 400, status="success")
    jobs = [make_job(project, pipeline, 1, "build", "build", "success")]
    bridges = [make_bridge(project, pipeline, 1000 + i, f"trigger {i}", "deploy", "success") for i in range(100)]
    hostile.add_pipeline(project, pipeline, jobs, bridges)

    def new_bridge_at_the_head(request):
        entry = hostile._pipelines[project["id"]][pipeline["id"]]
        if request.args.get("page") == "1" and len(entry.bridges) == 100:
            entry.bridges.append(make_bridge(project, pipeline, 2000, "late trigger", "deploy", "running"))

    hostile.then(r"/bridges", new_bridge_at_the_head)
    result = run(env_for(hostile, databand), pipeline="400")
    assert result.exit_code == 0, result.output
    names = [e["job"]["name"].rsplit(".", 1)[1] for e in databand.events]
    assert sorted(n for n in names if n.startswith("trigger")) == sorted(f"trigger {i}" for i in range(100))
    assert hostile.count(r"/bridges$") == 2  # the one page counted came back full: the next one was read
    assert result.elapsed < 5


def test_foreign_redirect_of_a_log_only_leaves_the_log_out(hostile, databand, mixed, workdir):
    with Recorder(body=b"log", content_type="text/plain") as other:
        hostile.on(r"/jobs/105/trace", lambda r: Response(status=302, headers={"Location": f"{other.url}/log"}))
        result = run(env_for(hostile, databand))
        assert other.seen == []
    assert result.exit_code == 0, result.output
    assert "the log of job 'lint' (GitLab redirected it away from its own address; not followed)" in result.stderr
    assert len(databand.events) == EVENTS_OF_MIXED


def test_page_that_repeats_itself_is_stopped(hostile, databand, workdir):
    project, pipeline, jobs = generate_pipeline(hostile.url, 100, seed=6)
    hostile.add_pipeline(project, pipeline, jobs)
    first_page = {}

    def same_page_forever(request):
        # A broken proxy: every page number gets page 1, no count, and a next page pointing back.
        if not first_page:
            first_page["body"] = sorted(jobs, key=lambda j: -j["id"])[:100]
        return Response(json.dumps(first_page["body"]), content_type="application/json",
                        headers={"X-Next-Page": "1", "X-Per-Page": "100", "X-Page": "1",
                                 "Link": f'<{hostile.url}/api/v4/loop?page=1>; rel="next"'})

    hostile.on(r"/jobs\?", same_page_forever)
    result = run(env_for(hostile, databand), pipeline=str(pipeline["id"]))
    assert result.exit_code == 0, result.output
    assert "repeated items already read" in result.stderr
    # Page 1 has no count, so the next pages go out read ahead, IN_FLIGHT at once (the bound);
    # page 2 repeats page 1, so no more are sent. The failed jobs' listing, answered the same, too.
    assert hostile.count(r"/jobs$", unfiltered) == hostile.count(r"/jobs$", failed_only) == 1 + IN_FLIGHT
    job_runs = [e for e in databand.events if e["job"]["facets"]["jobType"]["jobType"] == "JOB"]
    assert len(job_runs) == 100 and len({e["run"]["runId"] for e in job_runs}) == 100
    assert result.elapsed < 5


def test_listing_that_ends_early_is_said(hostile, databand, workdir):
    project, pipeline, jobs = generate_pipeline(hostile.url, 250, seed=7)
    hostile.add_pipeline(project, pipeline, jobs)
    # Page 3 comes back empty although page 1 counted 250 jobs (X-Total).
    hostile.on(r"/jobs\?.*page=3", lambda r: Response("[]", content_type="application/json"))
    result = run(env_for(hostile, databand), pipeline=str(pipeline["id"]))
    assert result.exit_code == 0, result.output
    assert "50 of the 250 jobs GitLab counted" in result.stderr
    job_runs = [e for e in databand.events if e["job"]["facets"]["jobType"]["jobType"] == "JOB"]
    assert len(job_runs) == 200
    assert result.elapsed < 5


# -- trickling -----------------------------------------------------------------------------


def test_trickled_jobs_page_is_a_gitlab_error_within_its_bound(hostile, mixed):
    body = json.dumps([]).encode()
    hostile.on(r"/jobs\?", lambda r: trickled(b"", b" " * 200 + body, hostile.stopping()))
    message, elapsed = refused(hostile)
    assert f"GET {PIPELINE_PATH}/jobs" in message and "within 2 s" in message
    assert elapsed < QUICK.read + 3


def test_trickled_jobs_page_is_cut_at_the_budget(hostile, mixed):
    body = json.dumps([]).encode()
    hostile.on(r"/jobs\?", lambda r: trickled(b"", b" " * 200 + body, hostile.stopping()))
    message, elapsed = refused(hostile, gitlab_bounds=ReadBounds(read=30), gitlab_timeout=1.5)
    assert "within 1.5 s (--gitlab-timeout)" in message
    assert elapsed < 1.5 + 3


def trickled_log_report(first: bytes, every: float = 1.0):
    with HostileGitLab() as gitlab:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 77, status="failed")
        jobs = [make_job(project, pipeline, 1, "load", "etl", "failed", failure_reason="script_failure"),
                make_job(project, pipeline, 2, "check", "etl", "failed", failure_reason="script_failure")]
        gitlab.add_pipeline(project, pipeline, jobs, traces={2: b"ERROR: the other log\n"})
        gitlab.on(r"/jobs/1/trace", lambda r: trickled(first, b"x" * 500, gitlab.stopping(), every=every,
                                                       content_type="text/plain"))
        report, elapsed = collect(gitlab, 77)
    assert elapsed < QUICK.log_cut + 3
    logs = {job.name: job.log_tail for job in report.pipeline.jobs}
    assert "ERROR: the other log" in logs["check"]
    return report, logs["load"]


def test_a_log_trickling_in_keeps_what_came_before_it_was_cut():
    # Not chunked, with a Content-Length: read a whole piece at a time, it came all or nothing, and
    # its cut dropped the lines that had come (the bounds table says the tail so far is kept).
    report, log = trickled_log_report(b"step 1\nERROR: disk full\n")
    assert log.startswith("[databand-gitlab-reporter: the end of this log was not reached"), log
    assert log.splitlines()[1:] == ["step 1", "ERROR: disk full"]  # the cut line of x's dropped
    assert any("the end of the log of job 'load'" in note for note in report.notes)


def test_a_log_of_which_nothing_came_in_time_is_left_out():
    report, log = trickled_log_report(b"", every=QUICK.log_cut + 2)  # not a byte before the cut
    assert log is None
    assert "Left out: the log of job 'load' (GitLab sent it too slowly, cut after 1.5 s)." in report.notes


def test_a_log_longer_than_its_bound_never_passes_middle_lines_for_its_end():
    with HostileGitLab() as gitlab:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 78, status="failed")
        gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 1, "load", "etl", "failed")])
        stop = gitlab.stopping()

        def endless(request):
            # GitLab sends a log whole, from its start: this one streams on past the log bound.
            def body():
                for number in range(10**6):
                    if stop.wait(0.002):
                        return
                    yield b"step %d: loading\n" % number
                yield b"ERROR: the real end\n"

            return Response(body(), status=200, content_type="text/plain", direct_passthrough=True)

        gitlab.on(r"/jobs/1/trace", endless)
        report, elapsed = collect(gitlab, 78)
    log = report.pipeline.jobs[0].log_tail
    assert log.startswith("[databand-gitlab-reporter: the end of this log was not reached within 1 s")
    assert "the lines below are from the middle, not the end" in log.splitlines()[0]
    assert "step " in log and "the real end" not in log
    assert any("the end of the log of job 'load'" in note and "from the middle" in note for note in report.notes)
    assert elapsed < QUICK.log_cut + 3


def test_trickled_databand_answer_is_cut_and_retried_then_kept(gitlab, mixed_plain, workdir):
    with TrickleServer() as slow:
        env = env_for(gitlab, DATABAND_URL=slow.url, DATABAND_ACCESS_TOKEN="databand-token-for-nobody")
        result = run(env)
    assert result.exit_code == 4
    line = assert_one_clear_line(result, "could not reach Databand", "no complete answer within 1 s")
    spent = float(re.search(r"attempts? in ([\d.]+) s", line)[1])
    assert slow.requests >= 2  # cut, and tried again
    # no attempt starts after the budget, and each is cut at its own bound
    assert result.elapsed < DELIVERY.retry.budget + DELIVERY.attempt + 2
    assert abs(spent - result.elapsed) < 1.5  # the time really spent, not the configured maximum
    [kept] = kept_files(workdir)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED


def test_databand_slower_than_an_attempt_is_cut_and_retried(gitlab, mixed_plain, workdir):
    with DatabandStandIn() as databand:
        databand.script({"delay": 3})  # slower than one attempt's bound: cut, tried again
        result = run(env_for(gitlab, databand))
        assert result.exit_code == 0, result.output
        assert databand.requests_seen == 2 and len(databand.payloads) >= 1
    assert result.elapsed < DELIVERY.attempt + 2
    assert kept_files(workdir) == []


def test_retry_message_says_the_time_really_spent(gitlab, databand, mixed_plain, workdir):
    databand.script(*[503] * 100)
    result = run(env_for(gitlab, databand))
    assert result.exit_code == 4
    line = assert_one_clear_line(result, "503 still after retrying")
    attempts, spent = re.search(r"\((\d+) attempts in ([\d.]+) s\)", line).groups()
    assert int(attempts) == databand.requests_seen
    assert float(spent) <= DELIVERY.retry.budget + 0.5 and abs(float(spent) - result.elapsed) < 1.5


# -- wrong shapes --------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
SHAPES = {
    "sso page": (200, "text/html; charset=utf-8", HTML, "is not JSON but an HTML page"),
    "object for a list": (200, "application/json", b'{"message": "ok"}', "is an object where a list was due"),
    "list for an object": (200, "application/json", b"[]", "is a list where an object was due"),
    "string for a number": (200, "application/json", b'[{"id": "101", "name": "x"}]', "a string as the id"),
    "cut short": (200, "application/json", b'[{"id": 1', "is not valid JSON"),
}
CASES = [
    ("pipeline", rf"^{PIPELINE_PATH}$", "sso page"),
    ("pipeline", rf"^{PIPELINE_PATH}$", "list for an object"),
    ("jobs", r"/jobs\?", "sso page"),
    ("jobs", r"/jobs\?", "object for a list"),
    ("jobs", r"/jobs\?", "string for a number"),
    ("jobs", r"/jobs\?", "cut short"),
]


@pytest.mark.parametrize("endpoint, pattern, shape", CASES)
def test_wrong_shapes_are_one_clear_gitlab_error(hostile, databand, mixed, workdir, endpoint, pattern, shape):
    status, content_type, body, words = SHAPES[shape]
    if shape == "list for an object" and endpoint == "pipeline":
        body = b'[{"id": 9001}]'
    hostile.on(pattern, lambda r: Response(body, status=status, content_type=content_type))
    result = run(env_for(hostile, databand))
    assert result.exit_code == 3
    path = PIPELINE_PATH if endpoint == "pipeline" else f"{PIPELINE_PATH}/{endpoint}"
    line = assert_one_clear_line(result, f"GET {path} (HTTP {status}, {content_type})", words)
    assert "?" not in line.split("GET ", 1)[1].split(" ", 1)[0]  # the path, never the query
    assert result.elapsed < 5
    assert databand.payloads == [] and kept_files(workdir) == []


@pytest.mark.parametrize("shape", ["sso page", "object for a list", "string for a number"])
def test_wrong_shapes_of_the_bridges_only_leave_the_bridges_out(hostile, databand, mixed, workdir, shape):
    # The jobs make the report; trigger jobs only add to it (an optional read, as the logs are).
    status, content_type, body, words = SHAPES[shape]
    hostile.on(r"/bridges\?", lambda r: Response(body, status=status, content_type=content_type))
    result = run(env_for(hostile, databand))
    assert result.exit_code == 0, result.output
    [note] = [line for line in result.output.splitlines() if "bridges (trigger jobs)" in line]
    assert f"HTTP {status}, {content_type}" in note and words in note
    [payload] = databand.payloads
    assert len(payload) == 15 and kept_files(workdir) == []  # every event but the bridge's


def test_string_where_a_number_is_due_in_the_pipeline(hostile, databand, mixed, workdir):
    hostile.on(rf"^{PIPELINE_PATH}$", lambda r: Response(json.dumps({"id": 9001, "project_id": "forty-two"}),
                                                         content_type="application/json"))
    result = run(env_for(hostile, databand))
    assert result.exit_code == 3
    assert_one_clear_line(result, f"GET {PIPELINE_PATH} (HTTP 200, application/json)", "a string as project_id")


def test_proxy_error_page_names_the_path(hostile, mixed):
    hostile.on(r"/jobs\?", lambda r: Response(HTML, status=502, content_type="text/html"))
    message, _ = refused(hostile)
    assert "502 (text/html)" in message and f"GET {PIPELINE_PATH}/jobs" in message


@pytest.mark.parametrize("what, pattern, answer, note", [
    ("log", r"/jobs/105/trace", (403, "application/json", b'{"message": "403"}'), "the log of job 'lint' (GitLab "
                                                                                   "answered 403)"),
    ("summary", r"/test_report_summary", (200, "text/html", HTML), "the test report summary (GitLab answered HTTP "
                                                                   "200, text/html"),
    ("summary", r"/test_report_summary", (200, "application/json", b"[]"), "is a list where an object was due"),
    ("report", r"/test_report$", (200, "application/json", b'{"test_suites": "many"}'),
     "test results (GitLab's test report has fields of an unexpected type)"),
    ("report", r"/test_report$", (200, "text/html", HTML), "test cases (the test report could not be read"),
])
def test_optional_reads_only_degrade_the_report(hostile, databand, workdir, what, pattern, answer, note):
    sample = pipelines.mixed(hostile.url)
    suites = [{"name": "unit", "build_ids": [102], "test_cases": [
        {"name": "t1", "classname": "c", "status": "failed", "execution_time": 1.0, "system_output": "boom"}]}]
    hostile.add_pipeline(sample.project, sample.pipeline, sample.jobs, sample.bridges,
                         {105: b"lint failed\n", 106: b"flaky\n"}, test_suites=suites)
    status, content_type, body = answer
    hostile.on(pattern, lambda r: Response(body, status=status, content_type=content_type))
    result = run(env_for(hostile, databand))
    assert result.exit_code == 0, result.output
    assert note in result.stderr
    assert len(databand.events) == EVENTS_OF_MIXED
    assert result.elapsed < 5
    by_name = {e["job"]["name"].rsplit(".", 1)[1]: e for e in databand.events}
    if what == "log":
        assert "log" not in by_name["lint"]["run"]["facets"]
    if what == "summary":
        assert not any("test" in e["run"]["facets"] for e in databand.events)
    if what == "report" and "unexpected type" in note:
        assert not any("test" in e["run"]["facets"] for e in databand.events)


def test_malformed_downstream_pipeline_only_degrades(hostile, databand, workdir):
    project = make_project(hostile.url)
    parent = make_pipeline(project, 300, status="success")
    child = make_pipeline(project, 301, status="success", source="parent_pipeline")
    hostile.add_pipeline(project, child, [make_job(project, child, 31, "child-job", "test", "success")])
    bridge = make_bridge(project, parent, 12, "trigger", "test", "success", downstream_pipeline=child)
    hostile.add_pipeline(project, parent, [make_job(project, parent, 11, "build", "build", "success")], [bridge])
    hostile.on(r"/pipelines/301/jobs", lambda r: Response(HTML, content_type="text/html"))
    result = run(env_for(hostile, databand), pipeline="300")
    assert result.exit_code == 0, result.output
    assert "downstream pipeline 301 of bridge 'trigger'" in result.stderr and "HTML page" in result.stderr
    assert {e["job"]["name"].rsplit(".", 1)[1] for e in databand.events} >= {"build", "trigger"}


# -- TLS -----------------------------------------------------------------------------------


def test_gitlab_self_signed_certificate(tmp_path, databand, workdir):
    cert, key = self_signed(tmp_path)
    with GitLabStandIn() as gitlab:
        url = serve_tls(gitlab, cert, key)
        pipelines.mixed(url).install(gitlab)
        env = {"GITLAB_URL": url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
               "DATABAND_ACCESS_TOKEN": databand.token}
        refused = run(env)
        assert refused.exit_code == 3
        assert_one_clear_line(refused, "self-signed certificate", "CI_SERVER_TLS_CA_FILE")
        assert refused.elapsed < 5 and databand.payloads == []
        trusted = run({**env, "CI_SERVER_TLS_CA_FILE": str(cert)})
        assert trusted.exit_code == 0, trusted.output
    assert len(databand.events) == EVENTS_OF_MIXED


def test_databand_self_signed_certificate(tmp_path, gitlab, mixed_plain, workdir):
    cert, key = self_signed(tmp_path)
    with DatabandStandIn() as databand:
        serve_tls(databand, cert, key)
        url = databand.url.replace("http://", "https://")
        env = env_for(gitlab, DATABAND_URL=url, DATABAND_ACCESS_TOKEN=databand.token)
        refused = run(env)
        assert refused.exit_code == 4
        assert_one_clear_line(refused, "self-signed certificate", "DATABAND_CA_FILE")
        assert refused.elapsed < 5 and databand.payloads == []
        [kept] = kept_files(workdir)
        assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED
        trusted = run({**env, "DATABAND_CA_FILE": str(cert)})
        assert trusted.exit_code == 0, trusted.output
        assert len(databand.events) == EVENTS_OF_MIXED


# -- local faults --------------------------------------------------------------------------


def test_output_under_a_regular_file_is_a_warning(gitlab, databand, mixed_plain, workdir):
    (workdir / "file.txt").write_text("a file, not a folder")
    result = run(env_for(gitlab, databand), "--output", str(workdir / "file.txt" / "sub" / "x.json"))
    assert result.exit_code == 0, result.output
    assert "could not write --output" in result.stderr and "Not a directory" in result.stderr
    assert len(databand.events) == EVENTS_OF_MIXED


def test_unsent_file_goes_to_the_temp_folder_when_the_working_folder_cannot_take_it(gitlab, databand,
                                                                                     mixed_plain, tmp_path,
                                                                                     monkeypatch):
    import tempfile

    # The working folder is gone (as root, a chmod would not stop the write): nothing can be made there.
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    databand.script(401)
    result = run(env_for(gitlab, databand))
    assert result.exit_code == 4
    [kept] = kept_files(spare)
    assert f"kept in {kept}" in result.stderr and f"resend --from-file {kept}" in result.stderr
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED


def test_one_target_failing_to_keep_never_stops_another(gitlab, mixed_plain, tmp_path, monkeypatch):
    import tempfile

    from reporter import report as lib

    blocked = tmp_path / "file.txt"
    blocked.write_text("x")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked / "tmp"))  # the fallback cannot be made either
    with DatabandStandIn() as refusing, DatabandStandIn() as accepting:
        refusing.script(401)
        from reporter.settings import Settings

        settings = Settings.from_env(env_for(gitlab, refusing))
        built = lib.collect(settings, 42, 9001)
        targets = [Databand(refusing.url, refusing.token, bounds=DELIVERY),
                   Databand(accepting.url, accepting.token, bounds=DELIVERY)]
        done = delivery.deliver(targets, built.events, 9001, keep_dir=str(blocked / "sub"))
        assert len(accepting.events) == EVENTS_OF_MIXED  # the second target still delivered
    [failure] = done.failures
    assert [o.sent for o in done.outcomes] == [EVENTS_OF_MIXED]
    assert failure.kept is None and failure.unsent == EVENTS_OF_MIXED
    message = done.message()
    assert "401" in message and "could not be kept" in message and "Not a directory" in message


FULL_DISK_SCRIPT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))
from reporter.cli import main
sys.argv = ["databand-gitlab-reporter", *sys.argv[1:]]
main()
"""


def full_disk(args, env, cwd):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, *args], env={**_base_env(), **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    done.elapsed = time.monotonic() - started
    return done


def _base_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}


def test_full_disk_output_is_a_warning_and_delivery_happens(gitlab, databand, mixed_plain, tmp_path):
    done = full_disk(["resend", "--project", "42", "--pipeline", "9001", "--output", str(tmp_path / "out.json")],
                     env_for(gitlab, databand), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "could not write --output" in done.stderr and "File too large" in done.stderr
    assert len(databand.events) == EVENTS_OF_MIXED
    assert not (tmp_path / "out.json").exists()  # never a truncated file where the path says a whole one


def test_full_disk_and_refused_says_both_why(gitlab, databand, mixed_plain, tmp_path):
    databand.script(401)
    done = full_disk(["resend", "--project", "42", "--pipeline", "9001"],
                     env_for(gitlab, databand, TMPDIR=str(tmp_path)), tmp_path)
    assert done.returncode == 4
    [line] = [x for x in done.stderr.splitlines() if "error:" in x]
    assert "401" in line and "DATABAND_ACCESS_TOKEN" in line  # why delivery failed
    assert "could not be kept" in line and "File too large" in line  # and why keeping failed
    assert list(tmp_path.glob("*unsent*")) == [] and list(tmp_path.glob(".databand-*")) == []


# -- resend --from-file --------------------------------------------------------------------


def _kept_events(gitlab, tmp_path):
    databand = DatabandStandIn().start()
    try:
        databand.script(401)
        os.chdir(tmp_path)
        run(env_for(gitlab, databand))
    finally:
        databand.stop()
    [kept] = kept_files(tmp_path)
    return kept, json.loads(kept.read_text())


@pytest.mark.parametrize("spoil, words", [
    (lambda events: events.insert(5, {"run": {"runId": "x"}}), "item 5"),
    (lambda events: events[7]["run"].pop("runId"), "no run.runId"),
    (lambda events: events[3].pop("eventTime"), "no eventTime"),
    (lambda events: events[-1]["job"].pop("namespace"), "no job.namespace and job.name"),
    (lambda events: events.pop(0), "0 root run events"),
    (lambda events: events.append(dict(events[0])), "2 root run events"),
])
def test_from_file_is_checked_whole_before_anything_is_sent(gitlab, databand, mixed_plain, tmp_path, monkeypatch,
                                                            spoil, words):
    monkeypatch.chdir(tmp_path)
    kept, events = _kept_events(gitlab, tmp_path)
    spoil(events)
    kept.write_text(json.dumps(events))
    result = CliRunner().invoke(cli, ["resend", "--from-file", str(kept)], env=env_for(gitlab, databand))
    assert result.exit_code == 2
    assert words in result.stderr and "nothing was sent" in result.stderr
    assert databand.requests_seen == 0
    assert json.loads(kept.read_text()) == events  # the file is left as it was


def test_from_file_cut_short_is_refused(gitlab, databand, mixed_plain, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept, _ = _kept_events(gitlab, tmp_path)
    kept.write_bytes(kept.read_bytes()[:-200])
    result = CliRunner().invoke(cli, ["resend", "--from-file", str(kept)], env=env_for(gitlab, databand))
    assert result.exit_code == 2 and "nothing was sent" in result.stderr
    assert databand.requests_seen == 0


# -- signals -------------------------------------------------------------------------------


def command(args, env, cwd):
    executable = os.path.join(os.path.dirname(sys.executable), "databand-gitlab-reporter")
    return subprocess.Popen([executable, *args], env={**_base_env(), **env}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_and_wait(process, signum):
    """Send the signal; the process's output and how long it took to end after it."""
    signalled = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=10)
    return out, err, time.monotonic() - signalled


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_databand_answers_slowly_keeps_every_event(gitlab, databand, mixed_plain, tmp_path,
                                                                signum, code):
    databand.script({"delay": 60})
    process = command(["resend", "--project", "42", "--pipeline", "9001"], env_for(gitlab, databand), tmp_path)
    assert wait_until(lambda: databand.requests_seen >= 1, 20)
    time.sleep(0.2)
    out, err, took = signal_and_wait(process, signum)
    assert process.returncode == code, err
    assert took < 3
    assert databand.payloads == []  # nothing was acknowledged
    [kept] = kept_files(tmp_path)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert f"kept in {kept.name}" in err and f"resend --from-file {kept.name}" in err


# Every signal whose default action ends the process and that a handler can catch: an ssh session
# dropping (SIGHUP), Ctrl-\ (SIGQUIT), a CPU limit (SIGXCPU), a stray kill -USR1 ... each a stop
# like SIGTERM, not the default action's silent death with every event lost.
ENDING = [signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGXCPU,
          signal.SIGVTALRM, signal.SIGPROF, signal.SIGPWR, signal.SIGIO, signal.SIGSTKFLT, signal.SIGRTMIN + 3]


def signal_name(signum):
    return f"SIGRTMIN+{signum - signal.SIGRTMIN}" if signal.SIGRTMIN < signum < signal.SIGRTMAX \
        else signal.Signals(signum).name


def started_with(signum, disposition):
    """The command as its caller leaves the signal: default (a test runner may ignore SIGHUP), or
    ignored (nohup)."""
    def preexec():
        signal.signal(signum, disposition)
    return preexec


def sending(gitlab, databand, cwd, signum, disposition):
    """The console script sending the sample to a Databand that does not answer, the signal as its
    caller leaves it: started, and its first POST under way."""
    databand.script({"delay": 60})
    process = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "databand-gitlab-reporter"),
                                "resend", "--project", "42", "--pipeline", "9001"],
                               env={**_base_env(), **env_for(gitlab, databand)}, cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=started_with(signum, disposition))
    assert wait_until(lambda: databand.requests_seen >= 1, 20)
    time.sleep(0.2)
    return process


@pytest.mark.parametrize("signum", ENDING, ids=signal_name)
def test_any_signal_that_ends_a_process_keeps_every_event(gitlab, databand, mixed_plain, tmp_path, signum):
    process = sending(gitlab, databand, tmp_path, signum, signal.SIG_DFL)
    out, err, took = signal_and_wait(process, signum)
    assert process.returncode == 128 + signum, err
    assert took < 3 and "Traceback" not in err
    assert databand.payloads == []
    [kept] = kept_files(tmp_path)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED
    name = signal_name(signum)
    assert [line for line in err.splitlines() if "stopped by" in line] == [
        f"databand-gitlab-reporter: stopped by {name} before every event was acknowledged."]
    assert f"kept in {kept.name}" in err and f"resend --from-file {kept.name}" in err


@pytest.mark.parametrize("second, gap", [(signal.SIGHUP, 0.0), (signal.SIGTERM, 0.002), (signal.SIGINT, 0.05)])
def test_two_signals_together_keep_every_event(gitlab, databand, mixed_plain, tmp_path, second, gap):
    # A dropped session (TERM and HUP at once) lost every event and said nothing: the second
    # signal exited at once, while the first was keeping them.
    process = sending(gitlab, databand, tmp_path, signal.SIGHUP, signal.SIG_DFL)
    process.send_signal(signal.SIGTERM)
    time.sleep(gap)
    out, err, took = signal_and_wait(process, second)
    # the stop of whichever the process took first (both pending: Linux hands over the lower number)
    assert process.returncode in (143, 128 + second), err
    [kept] = kept_files(tmp_path)
    assert len(json.loads(kept.read_text())) == EVENTS_OF_MIXED
    assert f"resend --from-file {kept.name}" in err


def test_a_signal_ignored_from_the_start_stays_ignored(gitlab, databand, mixed_plain, tmp_path):
    """nohup: SIGHUP ignored on purpose, so that the session may drop; the run goes on and SIGTERM
    still stops it."""
    process = sending(gitlab, databand, tmp_path, signal.SIGHUP, signal.SIG_IGN)
    process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert process.poll() is None
    out, err, took = signal_and_wait(process, signal.SIGTERM)
    assert process.returncode == 143, err
    assert len(json.loads(kept_files(tmp_path)[0].read_text())) == EVENTS_OF_MIXED


def test_signal_after_some_parts_were_acknowledged_keeps_only_the_rest(gitlab, databand, tmp_path, monkeypatch):
    project, pipeline, jobs = generate_pipeline(gitlab.url, 1200, seed=9)
    gitlab.add_pipeline(project, pipeline, jobs)
    databand.script({"delay": 0}, {"delay": 60}, {"delay": 60})  # the first part is accepted, the rest hang
    env = env_for(gitlab, databand)
    process = command(["resend", "--project", "42", "--pipeline", str(pipeline["id"])], env, tmp_path)
    said: list[str] = []
    reading = threading.Thread(target=lambda: said.extend(iter(process.stderr.readline, "")), daemon=True)
    reading.start()
    # The client's own word that it has Databand's answer: the server holding the payload is not enough.
    assert wait_until(lambda: any("Databand: part 1 acknowledged" in line for line in said)
                      and databand.requests_seen >= 3, 30)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    reading.join(timeout=5)
    err = "".join(said)
    assert process.returncode == 143, err
    [kept] = kept_files(tmp_path)
    unsent = json.loads(kept.read_text())
    accepted = {e["run"]["runId"] for e in databand.payloads[0][1:]}
    unsent_ids = {e["run"]["runId"] for e in unsent[1:]}
    assert unsent[0]["run"]["runId"] == databand.payloads[0][0]["run"]["runId"]  # with the root
    assert not accepted & unsent_ids
    assert len(accepted) + len(unsent_ids) == len(jobs) + len({j["stage"] for j in jobs})


def test_ctrl_c_while_gitlab_is_read(databand, tmp_path):
    with GitLabStandIn(latency=60) as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        env = env_for(gitlab, databand, CI_PROJECT_ID="42", CI_PIPELINE_ID="9001")
        process = command(["resend", "--project", "42", "--pipeline", "9001"], env, tmp_path)
        assert wait_until(lambda: gitlab.connections >= 1, 20)
        out, err, took = signal_and_wait(process, signal.SIGINT)
    assert process.returncode == 130, err
    assert took < 3
    assert "stopped by SIGINT before the report was sent" in err and "resend --project 42 --pipeline 9001" in err
    assert databand.requests_seen == 0 and kept_files(tmp_path) == []


def backfilling(gitlab, databand, tmp_path, pipelines: int, concurrency: int):
    """A backfill of `pipelines` one-job pipelines, started, with its first two POSTs under way (the
    caller scripts Databand's answers first); the process and its cursor's path."""
    project = make_project(gitlab.url)
    for i in range(pipelines):
        pipeline = make_pipeline(project, 500 + i, status="success", created_at="2026-10-02T10:00:00.000Z")
        pipeline["updated_at"] = "2026-10-02T11:00:00.000Z"
        gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 5000 + i, "build", "build", "success")])
    cursor = tmp_path / "cursor.json"
    process = command(["resend", "--project", "42", "--since", "2026-10-01", "--concurrency", str(concurrency),
                       "--cursor", str(cursor)], env_for(gitlab, databand), tmp_path)
    assert wait_until(lambda: databand.requests_seen >= 2, 20)
    return process, cursor


def test_sigterm_during_a_backfill_stops_the_workers_too(gitlab, databand, tmp_path):
    databand.script(*[{"delay": 60}] * 10)
    process, cursor = backfilling(gitlab, databand, tmp_path, 6, concurrency=2)
    out, err, took = signal_and_wait(process, signal.SIGTERM)
    assert process.returncode == 143, err
    assert took < 3  # the two deliveries in flight were cut, the four not started failed at once
    assert "stopped by SIGTERM with 0 of 6 pipelines sent; run the same command again to send the rest" in err
    assert databand.payloads == []
    assert not cursor.exists() or json.loads(cursor.read_text()).get("done", []) == []
    # The two cut deliveries kept no file: the same command sends those pipelines again, and a
    # file of them, named nowhere, would have sent them twice.
    assert kept_files(tmp_path) == []


def test_a_backfill_stopped_after_some_pipelines_says_how_many(gitlab, databand, tmp_path):
    databand.script({"delay": 0}, *[{"delay": 60}] * 10)  # the first pipeline is taken, the rest hang
    process, cursor = backfilling(gitlab, databand, tmp_path, 4, concurrency=1)
    out, err, took = signal_and_wait(process, signal.SIGINT)
    assert process.returncode == 130, err
    assert "stopped by SIGINT with 1 of 4 pipelines sent; run the same command again to send the rest" in err
    assert len(json.loads(cursor.read_text())["done"]) == 1 and kept_files(tmp_path) == []


def test_the_signals_left_alone_are_the_faults_the_uncatchable_and_the_ignored_ones():
    """SIGPIPE and SIGXFSZ stay ignored (Python's own setting): a write to a closed stdout fails as a
    write, exit 4, and one past the file-size limit as "File too large", not as a stop."""
    from reporter import process

    assert set(ENDING) | {signal.SIGINT, signal.SIGTERM} <= set(process.STOPPING)
    left = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
            signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS, signal.SIGCHLD,
            signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGURG, signal.SIGWINCH}
    assert not left & set(process.STOPPING)
    assert process.signal_name(signal.SIGRTMIN + 3) == "SIGRTMIN+3"
    assert process.signal_name(signal.SIGHUP) == "SIGHUP"
