"""Self-tests of the stand-ins: they must answer like GitLab and Databand,
since every reporter test trusts them. Clients here are plain requests and
python-gitlab, never the reporter."""

from __future__ import annotations

import gzip
import json
import sys
import time
import warnings

import gitlab
import pytest
import requests
from standins import (
    DatabandStandIn,
    GitLabStandIn,
    generate_pipeline,
    make_bridge,
    make_job,
    make_pipeline,
    make_project,
    synthetic_trace,
)

TOKEN = "glpat-standin-token-000000000"
JOB_TOKEN = "glcbt-standin-job-token-0000"
PRIVATE = {"PRIVATE-TOKEN": TOKEN}


@pytest.fixture
def gl_server():
    with GitLabStandIn() as server:
        yield server


@pytest.fixture
def small(gl_server):
    """A 4-job pipeline with one retried job, one bridge and two logs."""
    project = make_project(gl_server.url)
    pipeline = make_pipeline(project, 6, status="failed", finished_at="2024-05-01T10:20:00.000Z")
    child_project = make_project(gl_server.url, id=43, path="acme/loaders")
    child = make_pipeline(child_project, 9, status="success")
    jobs = [
        make_job(project, pipeline, 7, "compile", "build", "success"),
        make_job(project, pipeline, 8, "unit", "test", "failed"),
        make_job(project, pipeline, 9, "lint", "test", "success", allow_failure=True),
        make_job(project, pipeline, 11, "unit", "test", "failed"),  # retry of 8
    ]
    bridges = [make_bridge(project, pipeline, 10, "trigger-loaders", "deploy", "success", downstream_pipeline=child)]
    traces = {7: b"compiling\nok\n", 11: b"".join(b"line %04d\n" % i for i in range(1000))}
    gl_server.add_pipeline(project, pipeline, jobs, bridges, traces)
    return project, pipeline, jobs, bridges, traces


def api(server, path, headers=PRIVATE, **kwargs):
    return requests.get(f"{server.url}/api/v4{path}", headers=headers, timeout=5, **kwargs)


# ---- builders ---------------------------------------------------------------


def test_builders_follow_the_documented_shapes(gl_server, small):
    project, pipeline, jobs, bridges, _ = small
    # Top-level keys GitLab's entities send (gitlab-api-facts.md; the documentation's examples add
    # `source` to jobs and `archived` to pipelines, which GitLab's source does not).
    job_keys = {
        "commit", "coverage", "archived", "allow_failure", "created_at", "started_at",
        "finished_at", "erased_at", "duration", "queued_duration", "artifacts_file", "artifacts",
        "artifacts_expire_at", "tag_list", "id", "name", "pipeline", "ref", "runner", "runner_manager",
        "stage", "status", "failure_reason", "tag", "web_url", "project", "user",
    }
    bridge_keys = job_keys - {
        "artifacts_file", "artifacts", "artifacts_expire_at", "tag_list", "runner", "runner_manager", "failure_reason",
    } | {"downstream_pipeline"}
    pipeline_keys = {
        "id", "iid", "project_id", "name", "sha", "ref", "status", "source", "created_at", "updated_at",
        "web_url", "before_sha", "tag", "yaml_errors", "user", "started_at", "finished_at", "committed_at",
        "duration", "queued_duration", "coverage", "detailed_status",
    }
    # artifacts_file only exists when a job has an archive; ours have none.
    assert job_keys - {"artifacts_file"} == set(jobs[1])
    assert "failure_reason" not in jobs[0]  # GitLab only exposes it on failed jobs
    assert bridge_keys == set(bridges[0])
    assert pipeline_keys == set(pipeline)
    assert jobs[0]["web_url"] == f"{gl_server.url}/acme/data-platform/-/jobs/7"
    assert pipeline["web_url"] == f"{gl_server.url}/acme/data-platform/-/pipelines/6"
    assert jobs[0]["pipeline"]["web_url"] == pipeline["web_url"]
    assert bridges[0]["downstream_pipeline"]["web_url"] == f"{gl_server.url}/acme/loaders/-/pipelines/9"
    assert jobs[1]["failure_reason"] == "script_failure"
    assert jobs[0]["duration"] == 60.0 and jobs[0]["started_at"] == "2024-05-01T10:00:10.000Z"
    running = make_job(project, pipeline, 12, "deploy", "deploy", "running")
    assert running["finished_at"] is None and running["started_at"] is not None
    pending = make_job(project, pipeline, 13, "later", "deploy", "manual")
    assert pending["started_at"] is None and pending["runner"] is None


def test_generate_pipeline_is_realistic_and_deterministic():
    project, pipeline, jobs = generate_pipeline("http://gl", 250, failed_every=25, retried_every=10)
    assert len(jobs) == 250
    assert generate_pipeline("http://gl", 250, failed_every=25, retried_every=10)[2] == jobs
    by_name = {}
    for job in jobs:
        by_name.setdefault(job["name"], []).append(job)
    retried = [attempts for attempts in by_name.values() if len(attempts) > 1]
    assert len(retried) == 22 and all(a[0]["status"] == "failed" for a in retried)
    assert all(a[0]["id"] < a[1]["id"] for a in retried)
    originals = [job for job in jobs if job["id"] < 100_001 + 228]
    order = {"build": 0, "test": 1, "deploy": 2}
    assert [order[j["stage"]] for j in originals] == sorted(order[j["stage"]] for j in originals)
    latest = [max(a, key=lambda j: j["id"]) for a in by_name.values()]
    assert sum(j["status"] == "failed" for j in latest) == 228 // 25
    assert pipeline["status"] == "failed"
    assert all(j["started_at"] >= pipeline["started_at"] and j["finished_at"] <= pipeline["finished_at"] for j in jobs)


# ---- GitLab: reading with python-gitlab ---------------------------------------


def test_python_gitlab_reads_250_jobs_over_3_pages(gl_server):
    project, pipeline, jobs = generate_pipeline(gl_server.url, 250, retried_every=10)
    gl_server.add_pipeline(project, pipeline, jobs)
    gl = gitlab.Gitlab(gl_server.url, private_token=TOKEN)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a Link host differing from the base URL warns
        listed = list(
            gl.projects.get(42, lazy=True)
            .pipelines.get(pipeline["id"], lazy=True)
            .jobs.list(iterator=True, per_page=100, include_retried=True)
        )

    assert [job.id for job in listed] == sorted((job["id"] for job in jobs), reverse=True)
    assert gl_server.count(r"/pipelines/1000/jobs$") == 3
    pages = [r.query.get("page") for r in gl_server.requests]
    assert pages == [None, "2", "3"]
    assert {r.auth for r in gl_server.requests} == {"private"}
    assert TOKEN not in repr(gl_server.requests)


def test_retried_jobs_are_left_out_unless_asked(gl_server, small):
    gl = gitlab.Gitlab(gl_server.url, private_token=TOKEN)
    pipeline = gl.projects.get("acme/data-platform", lazy=True).pipelines.get(6, lazy=True)
    assert [j.id for j in pipeline.jobs.list(get_all=True)] == [11, 9, 7]
    assert [j.id for j in pipeline.jobs.list(get_all=True, include_retried=True)] == [11, 9, 8, 7]
    assert [j.id for j in pipeline.jobs.list(get_all=True, scope=["failed"])] == [11]
    assert [j.id for j in pipeline.jobs.list(get_all=True, scope=["failed", "success"], include_retried=True)] == [11, 9, 8, 7]
    assert [b.id for b in pipeline.bridges.list(get_all=True)] == [10]
    assert gl.projects.get("acme/data-platform").id == 42
    assert gl.projects.get(42).pipelines.get(6).status == "failed"
    assert gl_server.requests[0].path == "/api/v4/projects/acme%2Fdata-platform/pipelines/6/jobs"


def test_invalid_list_parameters_are_400(gl_server, small):
    jobs = "/projects/42/pipelines/6/jobs"
    assert api(gl_server, jobs, params={"scope[]": "bogus"}).json() == {"error": "scope does not have a valid value"}
    assert api(gl_server, jobs, params={"include_retried": "maybe"}).status_code == 400
    assert api(gl_server, jobs, params={"per_page": "x"}).json() == {"error": "per_page is invalid"}
    assert api(gl_server, "/projects/42/pipelines/six").json() == {"error": "pipeline_id is invalid"}


# ---- GitLab: pagination headers ------------------------------------------------


def test_page_headers_match_gitlab(gl_server):
    project, pipeline, jobs = generate_pipeline(gl_server.url, 250, retried_every=10)
    gl_server.add_pipeline(project, pipeline, jobs)

    response = api(gl_server, "/projects/42/pipelines/1000/jobs", params={"include_retried": "true", "per_page": 100, "page": 2})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert len(response.json()) == 100
    h = response.headers
    assert (h["X-Page"], h["X-Per-Page"], h["X-Next-Page"], h["X-Prev-Page"]) == ("2", "100", "3", "1")
    assert (h["X-Total"], h["X-Total-Pages"]) == ("250", "3")
    base = f"{gl_server.url}/api/v4/projects/42/pipelines/1000/jobs"

    def link(page):
        return f"<{base}?id=42&include_retried=true&page={page}&per_page=100&pipeline_id=1000>"

    assert h["Link"] == (
        f'{link(1)}; rel="prev", {link(3)}; rel="next", {link(1)}; rel="first", {link(3)}; rel="last"'
    )


def test_last_and_out_of_range_pages(gl_server, small):
    last = api(gl_server, "/projects/42/pipelines/6/jobs", params={"per_page": 2, "page": 2, "scope[]": ["success", "failed"]})
    assert [j["id"] for j in last.json()] == [7]
    assert (last.headers["X-Next-Page"], last.headers["X-Prev-Page"], last.headers["X-Total-Pages"]) == ("", "1", "2")
    assert 'rel="next"' not in last.headers["Link"]
    # The Link keeps every parameter, arrays as key[]=, with Rails' sorted order.
    assert "include_retried=false&page=1&per_page=2&pipeline_id=6&scope%5B%5D=success&scope%5B%5D=failed>" in last.headers["Link"]

    beyond = api(gl_server, "/projects/42/pipelines/6/jobs", params={"page": 5})
    assert beyond.json() == [] and beyond.headers["X-Prev-Page"] == "" and beyond.headers["X-Next-Page"] == ""

    capped = api(gl_server, "/projects/42/pipelines/6/jobs", params={"per_page": 500})
    assert capped.headers["X-Per-Page"] == "100" and "per_page=500" in capped.headers["Link"]

    empty_project = make_project(gl_server.url, id=50, path="acme/empty")
    gl_server.add_pipeline(empty_project, make_pipeline(empty_project, 60), [])
    empty = api(gl_server, "/projects/50/pipelines/60/bridges")
    assert empty.json() == [] and (empty.headers["X-Total"], empty.headers["X-Total-Pages"]) == ("0", "1")


def test_more_than_10000_items_omit_the_totals(gl_server):
    project, pipeline, jobs = generate_pipeline(gl_server.url, 10_001)
    gl_server.add_pipeline(project, pipeline, jobs)
    at_limit = dict(pipeline, id=2000)
    gl_server.add_pipeline(project, at_limit, jobs[1:])

    over = api(gl_server, "/projects/42/pipelines/1000/jobs", params={"per_page": 100})
    assert len(over.json()) == 100
    assert "X-Total" not in over.headers and "X-Total-Pages" not in over.headers
    assert 'rel="last"' not in over.headers["Link"] and 'rel="first"' in over.headers["Link"]
    assert over.headers["X-Next-Page"] == "2"

    exactly = api(gl_server, "/projects/42/pipelines/2000/jobs", params={"per_page": 100})
    assert (exactly.headers["X-Total"], exactly.headers["X-Total-Pages"]) == ("10000", "100")
    assert 'rel="last"' in exactly.headers["Link"]


# ---- GitLab: authentication -----------------------------------------------------


def test_job_token_lists_jobs_but_nothing_else(gl_server, small):
    job = {"JOB-TOKEN": JOB_TOKEN}
    listed = api(gl_server, "/projects/42/pipelines/6/jobs", headers=job)
    assert listed.status_code == 200 and len(listed.json()) == 3
    # GitLab ignores a job token where it is not allowed: the request is anonymous.
    for path in ("/projects/42", "/projects/42/pipelines/6", "/projects/42/pipelines/6/bridges"):
        refused = api(gl_server, path, headers=job)
        assert (refused.status_code, refused.json()) == (404, {"message": "404 Project Not Found"}), path
    refused = api(gl_server, "/projects/42/jobs/7/trace", headers=job)
    assert (refused.status_code, refused.json()) == (401, {"message": "401 Unauthorized"})
    assert {r.auth for r in gl_server.requests} == {"job"}

    gl = gitlab.Gitlab(gl_server.url, job_token=JOB_TOKEN)
    pipeline = gl.projects.get(42, lazy=True).pipelines.get(6, lazy=True)
    assert len(pipeline.jobs.list(get_all=True)) == 3
    with pytest.raises(gitlab.GitlabGetError) as refused:
        gl.projects.get(42).pipelines.get(6)
    assert refused.value.response_code == 404
    assert JOB_TOKEN not in repr(gl_server.requests)


def test_job_token_refusal_status_is_an_opt_in_friendlier_answer():
    with GitLabStandIn(job_token_refusal_status=403) as server:
        project = make_project(server.url)
        server.add_pipeline(project, make_pipeline(project, 6), [])
        refused = api(server, "/projects/42/pipelines/6", headers={"JOB-TOKEN": JOB_TOKEN})
        assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})


def test_a_reader_without_build_access_gets_an_empty_job_list():
    with GitLabStandIn(build_access=False) as server:
        project = make_project(server.url)
        pipeline = make_pipeline(project, 6)
        server.add_pipeline(project, pipeline, [make_job(project, pipeline, 7, "a", "build", "success")])
        listed = api(server, "/projects/42/pipelines/6/jobs")
        assert (listed.status_code, listed.json()) == (200, [])
        assert api(server, "/projects/42/pipelines/6").status_code == 200
        assert api(server, "/projects/42/pipelines/6/bridges").status_code == 403


def test_bridges_lists_the_latest_attempt_unless_include_retried_is_sent_at_all():
    with GitLabStandIn() as server:
        project = make_project(server.url)
        pipeline = make_pipeline(project, 6)
        first = make_bridge(project, pipeline, 8, "deploy", "deploy", "failed")
        again = make_bridge(project, pipeline, 9, "deploy", "deploy", "success")
        server.add_pipeline(project, pipeline, [], [first, again])
        assert [b["id"] for b in api(server, "/projects/42/pipelines/6/bridges").json()] == [9]
        for value in ("true", "false"):  # undeclared there, so any value is Ruby-true in the finder
            listed = api(server, "/projects/42/pipelines/6/bridges", params={"include_retried": value})
            assert [b["id"] for b in listed.json()] == [9, 8], value


def test_throttle_holds_429_for_the_window_with_gitlab_s_headers():
    now = [1_800_000_010.0]
    with GitLabStandIn(clock=lambda: now[0]) as server:
        project = make_project(server.url)
        server.add_pipeline(project, make_pipeline(project, 6), [])
        server.throttle(window=60, limit=2)
        assert [api(server, "/projects/42/pipelines/6").status_code for _ in range(2)] == [200, 200]
        refused = api(server, "/projects/42/pipelines/6")
        assert refused.status_code == 429 and refused.text == "Retry later\n"
        assert refused.headers["Content-Type"].startswith("text/plain")
        assert refused.headers["Retry-After"] == "50"
        assert refused.headers["RateLimit-Reset"] == "1800000060"
        assert refused.headers["RateLimit-Remaining"] == "0"
        now[0] += 49
        assert api(server, "/projects/42/pipelines/6").status_code == 429
        now[0] += 1  # the next window
        assert api(server, "/projects/42/pipelines/6").status_code == 200

        server.throttle(window=60, limit=0, retry_after=False)
        refused = api(server, "/projects/42/pipelines/6")
        assert refused.status_code == 429 and "Retry-After" not in refused.headers
        assert refused.headers["RateLimit-Reset"] == "1800000120"


def test_test_summary_lags_a_just_finished_job():
    with GitLabStandIn() as server:
        project = make_project(server.url)
        pipeline = make_pipeline(project, 6)
        case = {"name": "t", "classname": "c", "status": "success", "execution_time": 0.1, "system_output": None}
        suites = [{"name": "unit", "build_ids": [7], "test_cases": [case]},
                  {"name": "lint", "build_ids": [8], "test_cases": [case]}]
        server.add_pipeline(project, pipeline, [], test_suites=suites)
        server.lag_test_summary([8], reads=1)
        first = api(server, "/projects/42/pipelines/6/test_report_summary").json()
        assert [s["name"] for s in first["test_suites"]] == ["unit"]
        second = api(server, "/projects/42/pipelines/6/test_report_summary").json()
        assert [s["name"] for s in second["test_suites"]] == ["unit", "lint"]


def test_bad_or_missing_token_is_401(gl_server, small):
    unauthorized = (401, {"message": "401 Unauthorized"})
    for headers in ({"PRIVATE-TOKEN": "glpat-wrong"}, {"Authorization": "Bearer glpat-wrong"}, {}, {"JOB-TOKEN": "wrong"}):
        response = api(gl_server, "/projects/42/pipelines/6/jobs", headers=headers)
        assert (response.status_code, response.json()) == unauthorized, headers
    assert api(gl_server, "/projects/42", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert [r.auth for r in gl_server.requests] == ["private", "private", "none", "job", "private"]
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gitlab.Gitlab(gl_server.url, private_token="glpat-wrong").projects.get(42)


def test_unknown_things_are_404(gl_server, small):
    assert api(gl_server, "/projects/99").json() == {"message": "404 Project Not Found"}
    assert api(gl_server, "/projects/acme%2Fnope/pipelines/6").json() == {"message": "404 Project Not Found"}
    assert api(gl_server, "/projects/42/pipelines/7").json() == {"message": "404 Not found"}
    assert api(gl_server, "/projects/42/jobs/999/trace").json() == {"message": "404 Not found"}
    assert api(gl_server, "/projects/42/jobs/10/trace").status_code == 404  # a bridge has no log
    assert api(gl_server, "/projects/42/nothing").json() == {"error": "404 Not Found"}


# ---- GitLab: job logs --------------------------------------------------------------


def test_trace_full_and_ranges(gl_server, small):
    gl_server.trace_ranges = True
    log = small[4][11]
    full = api(gl_server, "/projects/42/jobs/11/trace")
    assert (full.status_code, full.content) == (200, log)
    assert full.headers["Content-Type"] == "text/plain"
    assert full.headers["Content-Disposition"] == 'infile; filename="11.log"'

    tail = api(gl_server, "/projects/42/jobs/11/trace", headers={**PRIVATE, "Range": "bytes=-100"})
    assert (tail.status_code, tail.content) == (206, log[-100:])
    assert tail.headers["Content-Range"] == f"bytes {len(log) - 100}-{len(log) - 1}/{len(log)}"
    middle = api(gl_server, "/projects/42/jobs/11/trace", headers={**PRIVATE, "Range": "bytes=10-19"})
    assert (middle.status_code, middle.content) == (206, log[10:20])
    rest = api(gl_server, "/projects/42/jobs/11/trace", headers={**PRIVATE, "Range": "bytes=9000-"})
    assert rest.content == log[9000:]
    past = api(gl_server, "/projects/42/jobs/11/trace", headers={**PRIVATE, "Range": "bytes=99999-"})
    assert (past.status_code, past.headers["Content-Range"]) == (416, f"bytes */{len(log)}")

    assert api(gl_server, "/projects/42/jobs/9/trace").content == b""  # a job without a log
    gl = gitlab.Gitlab(gl_server.url, private_token=TOKEN)
    assert gl.projects.get(42, lazy=True).jobs.get(7, lazy=True).trace() == b"compiling\nok\n"


def test_large_streamed_trace_and_tail_read(gl_server):
    gl_server.trace_ranges = True
    size = 8 * 1024 * 1024
    trace = synthetic_trace(size, tail=b"ERROR: Job failed: exit code 1\n")
    project = make_project(gl_server.url)
    pipeline = make_pipeline(project, 6, status="failed")
    job = make_job(project, pipeline, 7, "load", "deploy", "failed")
    gl_server.add_pipeline(project, pipeline, [job], traces={7: trace})

    with api(gl_server, "/projects/42/jobs/7/trace", stream=True) as full:
        received = sum(len(chunk) for chunk in full.iter_content(1 << 20))
    assert received == size and int(full.headers["Content-Length"]) == size

    tail = api(gl_server, "/projects/42/jobs/7/trace", headers={**PRIVATE, "Range": "bytes=-4096"})
    assert tail.status_code == 206 and len(tail.content) == 4096
    assert tail.content.endswith(b"ERROR: Job failed: exit code 1\n")
    assert tail.content == b"".join(trace.chunks())[-4096:]
    assert [r.bytes_sent for r in gl_server.requests] == [size, 4096]


def test_trace_ignores_range_by_default_like_gitlab():
    with GitLabStandIn() as server:
        project = make_project(server.url)
        pipeline = make_pipeline(project, 6)
        server.add_pipeline(project, pipeline, [make_job(project, pipeline, 7, "a", "build", "success")], traces={7: b"0123456789"})
        response = api(server, "/projects/42/jobs/7/trace", headers={**PRIVATE, "Range": "bytes=-3"})
        assert (response.status_code, response.content) == (200, b"0123456789")
        assert "Accept-Ranges" not in response.headers


# ---- GitLab: fault injection ------------------------------------------------------


def test_fail_then_success(gl_server, small):
    gl_server.fail(r"/jobs$", 502, times=2)
    gl_server.fail(r"/pipelines/6$", 429, headers={"Retry-After": "1"})
    assert api(gl_server, "/projects/42/pipelines/6/jobs").status_code == 502
    limited = api(gl_server, "/projects/42/pipelines/6")
    assert (limited.status_code, limited.headers["Retry-After"], limited.json()) == (429, "1", {"message": "429 Too Many Requests"})
    assert api(gl_server, "/projects/42/pipelines/6").status_code == 200

    # python-gitlab retries the second 502 itself when asked to.
    gl = gitlab.Gitlab(gl_server.url, private_token=TOKEN, retry_transient_errors=True)
    assert len(gl.projects.get(42, lazy=True).pipelines.get(6, lazy=True).jobs.list(get_all=True)) == 3
    assert [r.status for r in gl_server.requests if r.path.endswith("/jobs")] == [502, 502, 200]
    assert gl_server.count(r"/jobs$") == 3

    gl_server.fail(r"/pipelines/6$", 500, body=b"<html>oops</html>")
    broken = api(gl_server, "/projects/42/pipelines/6")
    assert (broken.status_code, broken.content, broken.headers["Content-Type"]) == (500, b"<html>oops</html>", "text/plain")


def test_truncate_cuts_the_json(gl_server, small):
    gl_server.truncate(r"/jobs$")
    cut = api(gl_server, "/projects/42/pipelines/6/jobs")
    assert cut.status_code == 200
    with pytest.raises(ValueError):
        json.loads(cut.content)
    whole = api(gl_server, "/projects/42/pipelines/6/jobs")
    assert len(cut.content) == len(whole.content) // 2 and whole.content.startswith(cut.content)


# ---- Databand ---------------------------------------------------------------------

DB_TOKEN = "databand-standin-token-0000"


@pytest.fixture
def databand():
    with DatabandStandIn() as server:
        yield server


def lineage(parent: bool = False) -> dict:
    facets = {"parent": {"run": {"runId": "p"}, "job": {"namespace": "n", "name": "pipeline"}}} if parent else {}
    return {
        "eventType": "START",
        "eventTime": "2024-05-01T10:00:00.000Z",
        "run": {"runId": "0190a8c4-0000-7000-8000-000000000001", "facets": facets},
        "job": {"namespace": "gitlab", "name": "acme/data-platform"},
        "producer": "https://example.com/databand-gitlab-reporter",
    }


def post(server, body, *, token=DB_TOKEN, gzipped=True, content_type="application/json", timeout=5):
    data = json.dumps(body).encode() if not isinstance(body, bytes) else body
    headers = {"Content-Type": content_type}
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(server.url, data=data, headers=headers, timeout=timeout)


def test_databand_accepts_a_good_payload(databand):
    assert databand.url.endswith("/api/v1/tracking/open-lineage/3a8bc7f8-0c65-115f-98f6-aa662e60cbe7/events/bulk")
    events = [lineage(), lineage(parent=True)]
    response = post(databand, events)
    assert (response.status_code, response.json()) == (200, {})
    assert databand.payloads == [events] and databand.events == events
    assert databand.rejected == [] and databand.requests_seen == 1


def test_databand_refuses_bad_requests(databand):
    assert post(databand, [lineage()], token="wrong").status_code == 401
    assert post(databand, [lineage()], token=None).status_code == 401
    assert post(databand, [lineage()], gzipped=False).status_code == 415
    assert post(databand, [lineage()], content_type="text/plain").status_code == 415
    assert post(databand, b"not gzip", gzipped=False, content_type="application/json").status_code == 415
    bad_gzip = requests.post(databand.url, data=b"garbage", timeout=5, headers={
        "Content-Type": "application/json", "Content-Encoding": "gzip", "Authorization": f"Bearer {DB_TOKEN}"})
    assert bad_gzip.status_code == 400
    assert post(databand, b"{not json").status_code == 400
    assert post(databand, {"an": "object"}).status_code == 400
    assert requests.get(databand.url, timeout=5).status_code == 404
    assert databand.payloads == []
    assert [status for status, _ in databand.rejected] == [401, 401, 415, 415, 415, 400, 400, 400, 404]
    assert databand.rejected[0] == (401, "wrong token")
    assert DB_TOKEN not in repr(databand.rejected)


def test_databand_drops_a_payload_without_root_run(databand):
    response = post(databand, [lineage(parent=True), lineage(parent=True)])
    assert (response.status_code, response.json()) == (200, {})
    assert databand.payloads == [] and databand.events == []
    assert databand.rejected == [(200, "no root run")]


def test_databand_script_500_then_200(databand):
    databand.script(500, {"status": 429, "headers": {"Retry-After": "1"}})
    assert post(databand, [lineage()]).status_code == 500
    limited = post(databand, [lineage()])
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    assert post(databand, [lineage()]).status_code == 200
    assert len(databand.payloads) == 1
    assert databand.rejected == [(500, "scripted"), (429, "scripted")]


def test_databand_script_reset(databand):
    databand.script({"reset": True})
    with pytest.raises(requests.ConnectionError):
        post(databand, [lineage()])
    assert post(databand, [lineage()]).status_code == 200
    assert databand.requests_seen == 2 and len(databand.payloads) == 1
    assert databand.rejected == [(0, "scripted reset")]


def test_databand_script_delay_times_the_client_out(databand):
    databand.script({"delay": 0.6}, {"delay": 0.6, "status": 503})
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        post(databand, [lineage()], timeout=0.2)
    # The server still handles the late request, as a real one would.
    while not databand.payloads and time.monotonic() - started < 3:
        time.sleep(0.02)
    assert len(databand.payloads) == 1
    assert post(databand, [lineage()], timeout=3).status_code == 503


# ---- latency -------------------------------------------------------------------------


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_latency_delays_every_answer_but_not_concurrent_ones_in_turn():
    from concurrent.futures import ThreadPoolExecutor

    delay = 0.3
    with GitLabStandIn(latency=delay) as server:
        project = make_project(server.url)
        server.add_pipeline(project, make_pipeline(project, 6), [])
        answer, took = _timed(lambda: api(server, "/projects/42/pipelines/6"))
        assert answer.status_code == 200 and took >= delay
        # The record's times span the wait: arrival before it, last byte after.
        first = server.requests[0]
        # The server notes the last byte after handing it to the socket: the client may have it first.
        deadline = time.monotonic() + 2
        while not first.finished and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delay <= first.finished - first.started <= took

        # Six requests at once wait side by side: about one delay, not six.
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers, took = _timed(lambda: list(pool.map(
                lambda _: api(server, "/projects/42/pipelines/6"), range(6))))
        assert [a.status_code for a in answers] == [200] * 6
        assert delay <= took < 3 * delay
        assert server.count(r"/pipelines/6$") == 7

        server.latency = 0  # settable while it runs
        _, took = _timed(lambda: api(server, "/projects/42/pipelines/6"))
        assert took < delay

        server.clear_records()
        assert server.requests == [] and server.count("") == 0
        assert api(server, "/projects/42/pipelines/6").status_code == 200  # still served


def test_latency_applies_to_databand_too():
    with DatabandStandIn(latency=0.3) as server:
        answer, took = _timed(lambda: post(server, [lineage()]))
        assert answer.status_code == 200 and took >= 0.3
        assert len(server.payloads) == 1
        (received,) = server.received
        text = json.dumps([lineage()]).encode()
        assert (received.method, received.status, received.json_bytes) == ("POST", 200, len(text))
        assert received.bytes == len(gzip.compress(text))
        assert 0.3 <= received.finished - received.started <= took
        server.latency = 0
        assert post(server, b"garbage", gzipped=False).status_code == 415
        assert (server.received[1].status, server.received[1].json_bytes) == (415, None)
        server.clear_records()
        assert (server.payloads, server.events, server.rejected, server.received, server.requests_seen) == ([], [], [], [], 0)
    with pytest.raises(ValueError):
        GitLabStandIn(latency=-1)


def test_stop_cuts_the_latency_short():
    from concurrent.futures import ThreadPoolExecutor

    server = GitLabStandIn(latency=30).start()
    project = make_project(server.url)
    server.add_pipeline(project, make_pipeline(project, 6), [])
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(api, server, "/projects/42/pipelines/6")
        time.sleep(0.3)  # the request is in, waiting out its latency
        started = time.monotonic()
        server.stop()
        # The waiting request is answered at once instead of 30 s later.
        assert pending.result(timeout=5).status_code == 200
        assert time.monotonic() - started < 5


# ---- keep-alive ------------------------------------------------------------------------


def test_keep_alive_serves_a_session_on_one_connection():
    for keep_alive, connections in ((False, 3), (True, 1)):
        with GitLabStandIn(keep_alive=keep_alive) as server:
            project = make_project(server.url)
            pipeline = make_pipeline(project, 6)
            server.add_pipeline(project, pipeline, [make_job(project, pipeline, 7, "a", "build", "failed")],
                                traces={7: b"0123456789"})
            with requests.Session() as session:
                for path in ("/projects/42/pipelines/6", "/projects/42/pipelines/6/jobs", "/projects/42/jobs/7/trace"):
                    answer = session.get(f"{server.url}/api/v4{path}", headers=PRIVATE, timeout=5)
                    assert answer.status_code == 200
                    assert (answer.headers.get("Connection") == "close") is not keep_alive
            assert server.connections == connections
            server.clear_records()
            assert server.connections == 0

    with DatabandStandIn(keep_alive=True) as databand:
        with requests.Session() as session:
            for _ in range(3):
                data = gzip.compress(json.dumps([lineage()]).encode())
                answer = session.post(databand.url, data=data, timeout=5, headers={
                    "Content-Type": "application/json", "Content-Encoding": "gzip",
                    "Authorization": f"Bearer {DB_TOKEN}"})
                assert answer.status_code == 200
            # A refusal answered before the body is looked at still leaves the connection usable.
            assert session.post(databand.url, data=b"x" * 100_000, timeout=5).status_code == 401
            assert session.post(databand.url, data=data, timeout=5, headers={
                "Content-Type": "application/json", "Content-Encoding": "gzip",
                "Authorization": f"Bearer {DB_TOKEN}"}).status_code == 200
        assert databand.connections == 1 and len(databand.payloads) == 4


def test_keep_alive_with_python_gitlab_pages_and_an_abandoned_stream():
    with GitLabStandIn(keep_alive=True, trace_ranges=True) as server:
        project, pipeline, jobs = generate_pipeline(server.url, 1000, failed_every=500)
        big, small = [job["id"] for job in jobs if job["status"] == "failed"]
        traces = {big: synthetic_trace(8 * 1024 * 1024, tail=b"END\n"), small: b"small log\n"}
        server.add_pipeline(project, pipeline, jobs, traces=traces)
        gl = gitlab.Gitlab(server.url, private_token=TOKEN, per_page=100)
        listed = gl.projects.get(42, lazy=True).pipelines.get(pipeline["id"], lazy=True).jobs.list(get_all=True)
        assert len(listed) == 1000 and server.connections == 1  # ten pages, one connection

        # A client that stops reading a long log drops that connection; the next request opens another.
        streamed = gl.http_get(f"/projects/42/jobs/{big}/trace", streamed=True, raw=True)
        next(streamed.iter_content(64 * 1024))
        streamed.close()
        assert gl.http_get(f"/projects/42/jobs/{small}/trace", raw=True).content == b"small log\n"
        tail = api(server, f"/projects/42/jobs/{big}/trace", headers={**PRIVATE, "Range": "bytes=-4"})
        assert (tail.status_code, tail.content) == (206, b"END\n")
        assert server.connections <= 3
        assert [r.status for r in server.requests] == [200] * 12 + [206]


# ---- the benchmark built on the stand-ins (benchmarks/bench.py) ------------------------


def _bench():
    import importlib.util
    from pathlib import Path

    if "bench" not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
        spec = importlib.util.spec_from_file_location("bench", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["bench"]


def test_bench_waves_count_requests_that_ran_one_after_another():
    bench = _bench()
    assert bench.waves([]) == 0
    assert bench.waves([(0, 1), (0.5, 1.5), (0.2, 0.9)]) == 1  # all at once
    assert bench.waves([(0, 1), (1, 2), (2, 3)]) == 3  # one after another
    assert bench.waves([(0, 1), (0, 1), (1.1, 2), (1.2, 2), (2.5, 3)]) == 3
    assert bench.kind_of("/api/v4/projects/42/pipelines/7/jobs", 7) == "jobs"
    assert bench.kind_of("/api/v4/projects/43/pipelines/9/jobs", 7) == "downstream"
    assert bench.kind_of("/api/v4/projects/42/jobs/100/trace", 7) == "trace"
    assert bench.kind_of("/api/v4/projects/42/pipelines/7/test_report_summary", 7) == "test_report"
    case = bench.Case("x", 10_000, 200, 100)
    assert (case.failed(), case.minimum_requests()) == (100, 1 + 100 + 2 + 100)


def test_bench_runs_the_command_once(tmp_path):
    bench = _bench()
    if not bench.COMMAND.exists():
        pytest.skip(f"{bench.COMMAND} is not installed")
    case = bench.Case("10 jobs", 10, 1, 10)
    with bench.standins(case) as (gitlab_, databand_):
        where = bench.serve(case, gitlab_)
        run = bench.run_case_once(case, where, gitlab_, databand_, bench.child_env(gitlab_, databand_), str(tmp_path))
    # Page 1 and the failed jobs' listing; the one failed job's log.
    assert run["gitlab_by_kind"]["jobs"] == 2 and run["gitlab_by_kind"]["trace"] == 1
    assert run["databand_posts"] >= 1 and run["events_accepted"] > 10
    assert run["databand_json_bytes"] > run["databand_gzip_bytes"] > 0
    assert bench.spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "runs": 3}
    # wait4's peak RSS is the command's, not this test process's (see bench._LAUNCHER).
    assert 15 < run["peak_rss_mb"] < 150
