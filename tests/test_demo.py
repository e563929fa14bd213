"""`databand-gitlab-reporter demo`: the real path on a recorded pipeline, offline; its servers answer
as GitLab and Databand do; it works from an installed wheel, whatever proxy the shell names."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

import olschema
from reporter import demo
from reporter.cli import cli

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO.parent / "shared" / "gitlab-api-schemas"
TOKENS = (demo.GITLAB_TOKEN, demo.DATABAND_TOKEN)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def run_demo(*args, env=None):
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["demo", *args], env=env, catch_exceptions=False)
    result.elapsed = time.monotonic() - started
    return result


def test_demo_prints_the_summary_the_tree_and_where_the_events_are(workdir):
    result = run_demo()
    assert result.exit_code == 0, result.output
    out = result.output
    # The job log summary, as `report` prints it.
    assert "Databand: pipeline 9001 failed, 18 events sent" in out
    assert "Jobs: 11 = 7 passed, 1 failed, 2 skipped, 1 manual (and 1 earlier attempt, retried)" in out
    assert "Failed: load:orders (stage load): The script failed" in out
    assert "Wrote 18 events to databand-demo-events.json" in out
    assert "Sent 18 events in 1 request to Databand at 127.0.0.1:" in out
    # The tree, with the retried, manual, skipped and trigger jobs.
    for line in ("pipeline 9001 (acme/data-platform, main): failed", "stage test: passed",
                 "test:integration: failed (attempt 1, retried) - There has been a runner system failure, please try again",
                 "test:integration: passed (attempt 2)", "load:orders: failed - The script failed",
                 "load:backfill-history: manual", "trigger:dashboards: skipped (trigger job)",
                 "stage .post: passed"):
        assert line in out, line
    assert "(--dry-run)" not in out
    # The failed job's log as it was sent, error included.
    assert 'UniqueViolation: duplicate key value violates unique constraint "orders_pkey"' in out
    path = workdir / demo.DEFAULT_OUTPUT
    assert f"The events, a JSON array of OpenLineage run events: {path}" in out
    events = json.loads(path.read_text())
    assert isinstance(events, list) and len(events) == 18
    olschema.assert_valid(events)
    assert "The Databand stand-in accepted 18 events in 1 request." in out
    text = out + path.read_text()
    assert not [token for token in TOKENS if token in text]
    assert result.elapsed < 10


def test_the_receiver_gets_every_event_written(workdir):
    """Through the one function that calls the reporter: what Databand's stand-in accepted is what
    --output wrote, event for event."""
    with demo.servers() as at:
        code, events, tree = demo._run_report(demo.environment(os.environ, at), ["--output", "out.json"])
        received = list(at.received.events)
    assert code == 0
    assert events == json.loads((workdir / "out.json").read_text())
    assert sorted(json.dumps(e, sort_keys=True) for e in received) == sorted(json.dumps(e, sort_keys=True)
                                                                             for e in events)
    assert tree[0] == "pipeline 9001 (acme/data-platform, main): failed"


def test_demo_goes_around_every_proxy_and_the_users_settings(workdir, monkeypatch):
    """Proxy variables pointing at a listener that counts connections, a lowercase no_proxy that
    requests would read before NO_PROXY, and settings of a real job and user: the demo runs as
    always, the proxy sees nothing, and the variables are as they were afterwards."""
    proxy = socket.create_server(("127.0.0.1", 0))
    connections = []

    def accept():
        while True:
            try:
                connection, _ = proxy.accept()
            except OSError:
                return
            connections.append(connection.getpeername())
            connection.close()  # refused at once: a report sent through it fails fast, not at a time-out

    threading.Thread(target=accept, daemon=True).start()
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    try:
        env = {name: address for name in PROXY_VARIABLES}
        env.update(no_proxy="example.com", NO_PROXY="example.org", CI_PROJECT_ID="7", CI_PIPELINE_ID="5",
                   GITLAB_TOKEN="glpat-someone-elses-token-0000", DATABAND_TARGETS="file",
                   DATABAND_EXCLUDE_JOBS="load:*")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        before = dict(os.environ)
        result = run_demo("--output", "events.json")
        assert dict(os.environ) == before
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert connections == []
    assert "Failed: load:orders" in result.output and "Sent 18 events" in result.output
    assert "someone-elses" not in result.output


def test_the_environment_keeps_local_addresses_off_the_proxy_in_both_spellings():
    at = demo.Servers("http://127.0.0.1:1", "http://127.0.0.1:2" + demo.BULK_PATH, demo.Received())
    env = demo.environment({"no_proxy": ".corp.example", "CI_JOB_TOKEN": "x", "PATH": "/bin"}, at)
    assert env["no_proxy"] == env["NO_PROXY"] == ".corp.example,127.0.0.1,localhost"
    assert env["PATH"] == "/bin" and "CI_JOB_TOKEN" not in env
    assert requests.utils.should_bypass_proxies(at.gitlab_url, env["no_proxy"])


def test_demo_help_has_an_example_and_loads_nothing_heavy():
    code = ("import sys; from reporter.cli import main\n"
            "sys.argv = ['databand-gitlab-reporter', 'demo', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gitlab', 'requests', 'urllib3')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "databand-gitlab-reporter demo --output" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-300:]


# -- the stand-ins answer as GitLab and Databand do -------------------------------------------


@pytest.fixture(scope="module")
def served():
    with demo.servers() as at:
        yield at


def gitlab_get(served, path, token=demo.GITLAB_TOKEN, headers=(), **kwargs):
    return requests.get(f"{served.gitlab_url}/api/v4/projects/42{path}",
                        headers={"PRIVATE-TOKEN": token, **dict(headers)}, timeout=5, **kwargs)


def test_jobs_come_in_gitlab_pages_retried_attempts_only_when_asked(served):
    first = gitlab_get(served, "/pipelines/9001/jobs", params={"include_retried": "true", "per_page": 5})
    assert first.status_code == 200
    assert {k: first.headers[k] for k in ("X-Page", "X-Per-Page", "X-Total", "X-Total-Pages", "X-Next-Page",
                                          "X-Prev-Page")} == {
        "X-Page": "1", "X-Per-Page": "5", "X-Total": "11", "X-Total-Pages": "3", "X-Next-Page": "2",
        "X-Prev-Page": ""}
    assert 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    ids = [job["id"] for job in first.json()]
    assert ids == sorted(ids, reverse=True)  # newest first
    last = gitlab_get(served, "/pipelines/9001/jobs", params={"include_retried": "true", "per_page": 5, "page": 3})
    assert last.headers["X-Next-Page"] == "" and len(last.json()) == 1
    every = gitlab_get(served, "/pipelines/9001/jobs", params={"include_retried": "true", "per_page": 500})
    assert every.headers["X-Per-Page"] == "100" and len(every.json()) == 11
    latest = gitlab_get(served, "/pipelines/9001/jobs").json()
    assert len(latest) == 10 and 71205 not in {job["id"] for job in latest}
    assert gitlab_get(served, "/pipelines/9001/bridges").json()[0]["downstream_pipeline"] is None


def test_logs_are_whole_text_whatever_range_asks_and_tokens_are_checked(served):
    log = gitlab_get(served, "/jobs/71206/trace", headers={"Range": "bytes=-100"})
    assert log.status_code == 200 and log.headers["Content-Type"] == "text/plain"
    assert log.text.startswith("\x1b[0KRunning with gitlab-runner") and "ERROR: Job failed" in log.text
    assert gitlab_get(served, "/jobs/71201/trace").text == ""  # a job that passed: nothing recorded
    assert gitlab_get(served, "/jobs/71210/trace").status_code == 404  # a bridge has no log
    assert gitlab_get(served, "/pipelines/9001", token="glpat-wrong").json() == {"message": "401 Unauthorized"}
    assert gitlab_get(served, "/pipelines/1").status_code == 404


def test_the_databand_stand_in_checks_what_databand_checks(served):
    def post(body, **headers):
        sent = {"Authorization": f"Bearer {demo.DATABAND_TOKEN}", "Content-Type": "application/json",
                "Content-Encoding": "gzip", **headers}
        return requests.post(served.databand_url, data=body, headers=sent, timeout=5).status_code

    assert post(gzip.compress(b"[]"), Authorization="Bearer nope") == 401
    assert post(b"[]") == 400
    assert post(gzip.compress(b"[]"), **{"Content-Encoding": "identity"}) == 415
    before = len(served.received.events)
    assert post(gzip.compress(b'[{"eventType": "START"}]')) == 200
    assert len(served.received.events) == before + 1


def test_the_recording_is_shaped_as_gitlab_answers():
    """The facts of ../shared/gitlab-api-facts.md the reporter must cope with, in the recording."""
    now = datetime(2027, 3, 1, 6, 30, tzinfo=timezone.utc)
    recording = demo.Recording.load(now)
    assert "archived" not in recording.pipeline and recording.pipeline["name"] is None
    for job in recording.jobs:
        assert ("failure_reason" in job) == (job["status"] == "failed")
        assert not {"source", "retried", "environment"} & set(job)
        assert job["tag_list"] == sorted(job["tag_list"])
        assert job["runner"] is None or job["runner"]["ip_address"] is None
    assert [j["id"] for j in recording.jobs] == sorted((j["id"] for j in recording.jobs), reverse=True)
    for bridge in recording.bridges:
        assert "downstream_pipeline" in bridge and not {"runner", "tag_list", "artifacts"} & set(bridge)
    suites = recording.test_report_summary["test_suites"]
    assert {s["name"]: s["build_ids"] for s in suites} == {"unit": [71203], "integration": [71212]}
    # Moved in time as a whole: the report job started a moment before `now`, the others before it.
    report_job = next(j for j in recording.jobs if j["id"] == demo.REPORT_JOB_ID)
    assert report_job["started_at"] == recording.pipeline["updated_at"] == "2027-03-01T06:29:58.000Z"
    assert recording.pipeline["created_at"] == "2027-03-01T06:19:45.600Z"
    assert max(j["finished_at"] or "" for j in recording.jobs) < report_job["started_at"]
    assert set(recording.logs) == {71205, 71206}


def test_the_recording_passes_gitlabs_own_response_schemas():
    """jobs against GitLab's public_api/v4/job.json and the pipeline against pipeline/detail.json,
    with the two patches SOURCES.txt there says real answers need."""
    if not (SCHEMAS / "spec").is_dir():
        pytest.skip("../shared/gitlab-api-schemas not found (GitLab's response schemas)")
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    root = SCHEMAS / "spec" / "fixtures" / "api" / "schemas"
    documents = {path: json.loads(path.read_text()) for path in root.rglob("*.json")}
    documents[root / "public_api/v4/job.json"]["properties"]["failure_reason"] = {"type": "string"}
    runner = documents[root / "public_api/v4/runner.json"]["properties"]
    runner.update(paused={"type": "boolean"}, runner_type={"type": "string"}, ip_address={"type": ["string", "null"]})
    registry = Registry().with_resources((path.as_uri(), Resource.from_contents(doc, default_specification=DRAFT7))
                                         for path, doc in documents.items())
    recording = demo.Recording.load()
    problems = []
    for name, instance in [("public_api/v4/job.json", job) for job in recording.jobs] + \
            [("public_api/v4/pipeline/detail.json", recording.pipeline)]:
        validator = Draft7Validator({"$ref": (root / name).as_uri()}, registry=registry)
        problems += [f"{name} {instance['id']}: {e.message}" for e in validator.iter_errors(instance)]
    assert not problems, problems


# -- from a wheel, in a fresh venv ------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_from_the_wheel_in_a_fresh_venv_behind_a_dead_proxy(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "build", "dist",
                                                                 "*.egg-info", ".pytest_cache", "tests"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
                   check=True, timeout=300)
    wheel = next(wheels.glob("databand_gitlab_reporter-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True, timeout=300)

    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now: a request through the proxy would be refused
    env = {key: value for key, value in os.environ.items() if key not in PROXY_VARIABLES
           and key.lower() not in ("no_proxy", "pythonpath")}
    env.update({name: f"http://127.0.0.1:{port}" for name in PROXY_VARIABLES})
    folder = tmp_path / "here"
    folder.mkdir()
    started = time.monotonic()
    done = subprocess.run([str(venv / "bin" / "databand-gitlab-reporter"), "demo"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert elapsed < 15, elapsed
    assert "Databand: pipeline 9001 failed, 18 events sent" in done.stdout
    assert "load:backfill-history: manual" in done.stdout
    events = json.loads((folder / demo.DEFAULT_OUTPUT).read_text())
    assert len(events) == 18
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import reporter; print(reporter.__file__)"],
                           capture_output=True, text=True, cwd=folder, check=True, env=env)
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's copy ran, not this checkout


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(workdir):
    (workdir / "taken").write_text("a file, not a folder")
    result = run_demo("--output", "taken/events.json")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "Warning: could not write --output taken/events.json" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "databand-gitlab-reporter: error: the events could not be written to taken/events.json (see the warning "
        "above); pass --output FILE in a folder you can write.")


# The console script's start, with the demo's Databand stand-in sending the process a signal as its
# first POST arrives and then answering slowly: the stop lands while the events are being delivered.
_SIGNALLED_DEMO = """
import os, signal, sys, time
from reporter import demo
when = sys.argv[1]
post = demo._Databand.do_POST
def do_POST(self):
    if when == "delivery":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    post(self)
demo._Databand.do_POST = do_POST
if when == "start":
    def early(output, say):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    demo.run.__globals__["_run"] = early
sys.argv = ["databand-gitlab-reporter", "demo"]
from reporter.start import main
main()
"""


@pytest.mark.parametrize("when", ["start", "delivery"])
def test_a_stopped_demo_says_to_run_the_demo_again_and_leaves_no_file(tmp_path, when):
    """A signal in the demo: its events were for the demo's own receiver, gone with it. An outsider's
    pass found `resend --project 42 --pipeline 9001` (the recorded pipeline, on no GitLab there is),
    a backfill's line, or a kept file with `resend --from-file` for them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "DATABAND_", "CI_"))}
    done = subprocess.run([sys.executable, "-c", _SIGNALLED_DEMO, when], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 143, done.stderr
    stops = [line for line in (done.stdout + done.stderr).splitlines() if "stopped by" in line]
    assert stops == ["databand-gitlab-reporter: stopped by SIGTERM before the report was sent. Send it later with: "
                     "databand-gitlab-reporter demo"], done.stdout + done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("databand-unsent")] == []
