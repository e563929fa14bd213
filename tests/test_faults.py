"""Fault injection: Databand and GitLab misbehaving, against the loopback stand-ins.

For each fault: the exit code, the message, how long it took, and what was delivered or kept.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

from clirun import QUICK, env_for, quick, resend
import pipelines
from reporter import report as lib
from reporter.retry import POLICY
from reporter.settings import Settings
from reporter.cli import cli


@pytest.fixture
def mixed(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


def kept_files(folder):
    return sorted(folder.glob("databand-unsent-*.json"))


# -- Databand ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_databand_5xx_once_is_retried(gitlab, databand, mixed, workdir, status):
    databand.script(status)
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 0, result.output
    assert databand.requests_seen == 2 and len(databand.payloads) == 1
    assert kept_files(workdir) == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_databand_5xx_for_good_keeps_everything(gitlab, databand, mixed, workdir, status):
    databand.script(*[status] * 100)
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 4
    assert f"{status} still after retrying" in result.stderr
    assert result.elapsed < QUICK.retry.budget + QUICK.attempt  # the retry budget, not a hang
    assert databand.requests_seen == QUICK.retry.attempts  # every attempt the policy allows, no more
    [kept] = kept_files(workdir)
    # every event: the root, 4 stages, 10 job attempts and the bridge (a resend has no own job to leave out)
    assert len(json.loads(kept.read_text())) == 16
    assert f"resend --from-file {kept.name}" in result.stderr


def test_databand_429_retry_after_is_honoured(gitlab, databand, mixed, workdir):
    databand.script({"status": 429, "headers": {"Retry-After": "1"}})
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 0, result.output
    assert result.elapsed >= 1
    assert len(databand.payloads) == 1


@pytest.mark.parametrize("status, words", [(401, "DATABAND_ACCESS_TOKEN"), (403, "DATABAND_ACCESS_TOKEN"),
                                           (413, "too large"), (400, "HTTP 400")])
def test_databand_refusals_are_not_retried(gitlab, databand, mixed, workdir, status, words):
    databand.script(status)
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 4
    assert words in result.stderr
    assert databand.requests_seen == 1
    assert len(kept_files(workdir)) == 1


def test_databand_reset_connection_is_retried(gitlab, databand, mixed, workdir):
    databand.script({"reset": True})
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 0, result.output
    assert len(databand.payloads) == 1


def test_databand_slower_than_the_timeout(gitlab, databand, mixed, workdir):
    databand.script({"delay": 1.5})  # answered, but after the client gave up on it
    result = resend(env_for(gitlab, databand), bounds=replace(QUICK, read=0.5, attempt=5))
    assert result.exit_code == 0, result.output
    time.sleep(1.2)  # let the late request land in the stand-in
    # the retry sent the same runs again: idempotent, the same run IDs
    assert len(databand.payloads) == 2
    first, second = ([e["run"]["runId"] for e in p] for p in databand.payloads)
    assert first == second


def test_databand_down_keeps_everything(gitlab, mixed, workdir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_for(gitlab, DATABAND_URL=f"http://127.0.0.1:{port}/api/v1/tracking/open-lineage/u/events/bulk",
                  DATABAND_ACCESS_TOKEN="t0ken-for-nobody")
    result = resend(env)
    assert result.exit_code == 4
    assert "could not reach Databand" in result.stderr
    assert result.elapsed < QUICK.retry.budget + QUICK.attempt
    assert len(kept_files(workdir)) == 1


def test_partial_failure_keeps_exactly_the_parts_not_accepted(gitlab, databand, workdir):
    from standins import generate_pipeline

    project, pipeline, jobs = generate_pipeline(gitlab.url, 1200, seed=9)
    gitlab.add_pipeline(project, pipeline, jobs)
    databand.script({"delay": 0}, *[500] * 100)  # the first part is accepted, then Databand fails
    result = resend(env_for(gitlab, databand), pipeline=str(pipeline["id"]))
    assert result.exit_code == 4
    [accepted] = databand.payloads
    [kept] = kept_files(workdir)
    unsent = json.loads(kept.read_text())
    root = accepted[0]["run"]["runId"]
    assert unsent[0]["run"]["runId"] == root  # the root goes with the kept events
    accepted_ids = {e["run"]["runId"] for e in accepted[1:]}
    unsent_ids = {e["run"]["runId"] for e in unsent[1:]}
    assert not accepted_ids & unsent_ids
    assert len(accepted_ids) + len(unsent_ids) == len(jobs) + len({j["stage"] for j in jobs})
    # and the kept file completes the report, once Databand is back
    from standins import DatabandStandIn

    with DatabandStandIn() as back:
        again = CliRunner().invoke(cli, ["resend", "--from-file", str(kept)], env=env_for(gitlab, back), obj=quick())
        assert again.exit_code == 0, again.output
        sent = {e["run"]["runId"] for p in [*databand.payloads, *back.payloads] for e in p}
    assert len(sent) == 1 + len(jobs) + len({j["stage"] for j in jobs})


# -- GitLab --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 500, 503])
def test_gitlab_5xx_on_a_page_is_retried(gitlab, databand, status):
    from standins import generate_pipeline

    project, pipeline, jobs = generate_pipeline(gitlab.url, 250, seed=1)
    gitlab.add_pipeline(project, pipeline, jobs)
    gitlab.fail(r"/jobs$", status, times=2)
    settings = Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, gitlab_policy=POLICY.faster(0.01))
    report = lib.collect(settings, 42, pipeline["id"])
    assert len([job for job in report.pipeline.jobs if job.kind == "job"]) == len(jobs)


def test_gitlab_429_waits_as_told_but_never_long(gitlab, mixed):
    gitlab.fail(r"/jobs$", 429, headers={"Retry-After": "3600"})
    said: list[str] = []
    settings = Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, progress=said.append,
                        gitlab_policy=POLICY.faster(1 / 60))  # the longest wait: 1 s
    started = time.monotonic()
    report = lib.collect(settings, 42, 9001)
    assert 1 <= time.monotonic() - started < 10
    assert report.pipeline.jobs
    assert said == ["GitLab answered 429 to GET /api/v4/projects/42/pipelines/9001/jobs; trying again in 1 s "
                    "(retry 1 of 5)"]


def test_gitlab_truncated_json(gitlab, databand, mixed):
    gitlab.truncate(r"/jobs$")
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 3
    assert "not valid JSON" in result.stderr
    assert databand.payloads == []


def test_gitlab_job_token_refused_elsewhere(gitlab, databand, mixed):
    # A job token of another project: GitLab refuses the job list itself.
    gitlab.fail(r"/jobs$", 403)
    env = env_for(gitlab, databand)
    env.pop("GITLAB_TOKEN")
    env["CI_JOB_TOKEN"] = gitlab.job_token
    result = resend(env)
    assert result.exit_code == 3
    assert "403" in result.stderr and "GITLAB_TOKEN" in result.stderr


def test_gitlab_that_never_answers_is_given_up(databand):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections into the backlog, never answers them
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["resend", "--project", "1", "--pipeline", "2", "--gitlab-timeout", "1"],
                                    env={"GITLAB_URL": url, "GITLAB_TOKEN": "glpat-x" * 3,
                                         "DATABAND_URL": databand.url, "DATABAND_ACCESS_TOKEN": databand.token})
        assert result.exit_code == 3
        assert "within 1 s (--gitlab-timeout)" in result.stderr
        assert time.monotonic() - started < 3  # every read was cut at the budget: no thread left waiting
    finally:
        listener.close()


def test_huge_log_without_range_support_keeps_the_tail(databand):
    from standins import GitLabStandIn, make_job, make_pipeline, make_project, synthetic_trace

    with GitLabStandIn() as gitlab:  # GitLab's log endpoint: no Range support
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 77, status="failed")
        jobs = [make_job(project, pipeline, 1, "load", "etl", "failed", failure_reason="script_failure")]
        tail = b"ERROR: the warehouse said no\n"
        gitlab.add_pipeline(project, pipeline, jobs, traces={1: synthetic_trace(30 * 2**20, tail=tail)})
        result = resend(env_for(gitlab, databand), pipeline="77")
        assert result.exit_code == 0, result.output
        [trace] = [r for r in gitlab.requests if r.path.endswith("/trace")]
        assert trace.bytes_sent >= 30 * 2**20  # the whole log went by, and only its end was kept
    log = next(e for e in databand.events if "log" in e["run"]["facets"])["run"]["facets"]["log"]["logBody"]
    assert log.endswith("ERROR: the warehouse said no")


def test_log_tail_uses_range_where_served(gitlab, databand):
    """GitLab ignores Range; a server in front of it that honours it (opt-in here) saves the body."""
    from standins import make_job, make_pipeline, make_project, synthetic_trace

    gitlab.trace_ranges = True
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 78, status="failed")
    jobs = [make_job(project, pipeline, 1, "load", "etl", "failed")]
    gitlab.add_pipeline(project, pipeline, jobs, traces={1: synthetic_trace(30 * 2**20, tail=b"the end\n")})
    assert resend(env_for(gitlab, databand), pipeline="78").exit_code == 0
    [trace] = [r for r in gitlab.requests if r.path.endswith("/trace")]
    assert trace.bytes_sent <= 256 * 1024


# -- bad input -----------------------------------------------------------------------------


def test_missing_and_null_fields_and_unknown_statuses(gitlab, databand):
    from standins import make_job, make_pipeline, make_project

    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 79, status="running")
    good = make_job(project, pipeline, 1, "ok", "build", "success")
    odd = make_job(project, pipeline, 2, "odd", "build", "success")
    odd.update(name=None, stage=None, status="quantum_superposition", allow_failure=None, created_at=None,
               started_at="not a time", finished_at=None, web_url=None)
    gitlab.add_pipeline(project, pipeline, [good, odd])
    result = resend(env_for(gitlab, databand), pipeline="79")
    assert result.exit_code == 0, result.output
    assert "quantum_superposition" in result.stderr and "OTHER" in result.stderr
    import olschema

    olschema.assert_valid(databand.events)
    # its stage is OTHER too (status.stage_status does not guess); the job is the one with a job id
    odd_event = next(e for e in databand.events if e["eventType"] == "OTHER"
                     and any(t["key"] == "gitlab.job_id" for t in e["run"]["facets"]["tags"]["tags"]))
    assert odd_event["job"]["name"].endswith(".job 2")


@pytest.mark.parametrize("args, words", [
    (["--gitlab-url", "ftp://gitlab.example.com"], "http(s) URL"),
    (["--gitlab-url", "https://user:hunter2@gitlab.example.com", "--databand-url", "databand"], "http(s) URL"),
])
def test_malformed_urls(args, words, gitlab):
    result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "1", *args],
                                env={"GITLAB_TOKEN": "glpat-abc" * 3, "DATABAND_ACCESS_TOKEN": "x" * 10})
    assert result.exit_code == 2, result.output  # a setting, refused before GitLab is read
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_resend_many_pipelines_reports_each_failure(gitlab, databand, mixed):
    result = resend(env_for(gitlab, databand), "--pipeline", "404404")
    assert result.exit_code == 3
    assert "404404" in result.stderr and "1 of 2 pipelines" in result.stderr
    assert len(databand.payloads) == 1  # the good one was still sent
