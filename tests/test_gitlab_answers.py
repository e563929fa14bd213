"""GitLab's reads as a user meets them: waits GitLab asks for (never past the budget), answers that
are not GitLab's API, names that do not resolve, URLs with /api/v4, a report outside a job, and
flags beating the job's CI_* variables."""

from __future__ import annotations

import json
import re
import time

import pipelines
import pytest
from click.testing import CliRunner
from standins import make_job, make_pipeline, make_project, unfiltered

from reporter import backfill, ids
from reporter import report as lib
from reporter.cli import cli
from reporter.errors import GitLabError
from reporter.retry import POLICY
from reporter.settings import Settings

JOBS = "/api/v4/projects/42/pipelines/9001/jobs"


@pytest.fixture
def mixed(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


def settings_for(gitlab, **given) -> Settings:
    return Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, **given)


def timed(work):
    started = time.monotonic()
    try:
        return work(), time.monotonic() - started
    except GitLabError as error:
        return error, time.monotonic() - started


def cli_run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


# -- waits GitLab asks for ------------------------------------------------------------------


def test_a_wait_past_the_budget_is_not_started_and_says_why(gitlab, mixed):
    gitlab.fail(r"/jobs$", 429, headers={"Retry-After": "60"})
    error, elapsed = timed(lambda: lib.collect(settings_for(gitlab, gitlab_timeout=5), 42, 9001))
    assert isinstance(error, GitLabError)
    assert "GitLab is rate-limiting (429) and asked to wait 60 s, past the 5 s left of --gitlab-timeout" in str(error)
    assert "raise --gitlab-timeout" in str(error) and f"GET {JOBS}" in str(error)
    assert elapsed < 2


def test_rate_limit_reset_alone_is_capped_and_bounded_by_the_budget(gitlab, mixed):
    # python-gitlab alone would sleep until the reset, an hour from now.
    gitlab.fail(r"/jobs$", 429, headers={"RateLimit-Reset": str(int(time.time()) + 3600)})
    error, elapsed = timed(lambda: lib.collect(settings_for(gitlab, gitlab_timeout=5), 42, 9001))
    assert re.search(r"asked to wait 3[56]\d\d s, past the 5 s left of --gitlab-timeout", str(error)), error
    assert elapsed < 2


def test_rate_limit_reset_soon_is_waited_for_and_said(gitlab, mixed):
    gitlab.fail(r"/jobs$", 429, headers={"RateLimit-Reset": str(int(time.time()) + 2)})
    said: list[str] = []
    report, elapsed = timed(lambda: lib.collect(settings_for(gitlab, progress=said.append), 42, 9001))
    assert report.pipeline.jobs
    assert 0.5 <= elapsed < 5  # the wait is the reset's, not python-gitlab's backoff
    assert len(said) == 1 and said[0].startswith(f"GitLab answered 429 to GET {JOBS}; trying again in ")


def test_the_budget_holds_the_read_bound_and_the_waits_together(gitlab, mixed):
    gitlab.fail(r"/jobs$", 503, times=20)  # more than the attempts of both listings (all jobs, failed jobs)
    policy = POLICY.faster(0.01)
    error, elapsed = timed(lambda: lib.collect(settings_for(gitlab, gitlab_policy=policy), 42, 9001))
    assert "GitLab answered 503" in str(error) and "try again later" in str(error)
    assert gitlab.count(r"/jobs$", unfiltered) == policy.attempts


def test_a_sweep_listing_never_sleeps_past_its_budget(gitlab, mixed, tmp_path):
    gitlab.fail(r"/pipelines$", 429, headers={"RateLimit-Reset": str(int(time.time()) + 3600)})
    settings = settings_for(gitlab, gitlab_timeout=5, dry_run=True)
    error, elapsed = timed(lambda: backfill.sweep_plan(settings, "42", 24, str(tmp_path / "cursor.json")))
    assert isinstance(error, GitLabError) and "past the 5 s left of --gitlab-timeout" in str(error)
    assert elapsed < 2


# -- answers that are not GitLab's API --------------------------------------------------------


@pytest.mark.parametrize("status, content_type, body", [
    (404, "text/html", b"<html><body>404 Not Found</body></html>"),  # a web server, not GitLab, at that path
    (200, "text/html", b"<!DOCTYPE html><html>Sign in</html>"),  # an SSO page
    (200, "application/json", b'{"message": "ok"}'),  # JSON, but not a list of jobs
])
def test_an_answer_that_is_not_gitlabs_api_says_to_check_the_url_and_proxy(gitlab, mixed, status, content_type,
                                                                          body):
    gitlab.fail(r"/jobs$", status, body=body, headers={"Content-Type": content_type}, times=10)
    error, _ = timed(lambda: lib.collect(settings_for(gitlab, gitlab_policy=POLICY.faster(0.01)), 42, 9001))
    assert isinstance(error, GitLabError)
    assert "check GITLAB_URL" in str(error) and "proxy" in str(error)
    assert "try again later" not in str(error).lower()


def test_the_url_variable_is_named_as_the_user_set_it(gitlab, mixed):
    gitlab.fail(r"/jobs$", 404, body=b"<html>nginx</html>", headers={"Content-Type": "text/html"})
    result = cli_run(["resend", "--project", "42", "--pipeline", "9001", "--dry-run", "--gitlab-url", gitlab.url],
                     {"GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 3 and "check --gitlab-url" in result.stderr


# -- names that do not resolve -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_a_gitlab_host_that_does_not_resolve_says_dns_and_the_variable_at_once(how):
    url = "https://gitlab.does-not-exist.invalid"
    env = {"GITLAB_TOKEN": "t" * 20}
    args = ["resend", "--project", "42", "--pipeline", "9001", "--dry-run"]
    if how == "variable":
        env["GITLAB_URL"] = url
    else:
        args += ["--gitlab-url", url]
    started = time.monotonic()
    result = cli_run(args, env)
    assert result.exit_code == 3
    assert "does not resolve (DNS)" in result.stderr
    assert ("check GITLAB_URL" if how == "variable" else "check --gitlab-url") in result.stderr
    assert time.monotonic() - started < 3  # no retries


# -- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/api/v4", "/api/v4/"])
def test_a_gitlab_url_with_the_api_path_is_named(gitlab, suffix):
    result = cli_run(["resend", "--project", "42", "--pipeline", "9001", "--dry-run"],
                     {"GITLAB_URL": gitlab.url + suffix, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 2
    assert f"GITLAB_URL must be GitLab's own address, without /api/v4 (the reporter adds it): {gitlab.url}." \
        in result.stderr
    assert gitlab.requests == []


def test_report_outside_a_job_points_to_resend(gitlab):
    result = cli_run(["report", "--dry-run"], {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 2
    assert "resend --project ... --pipeline ..." in result.stderr
    assert "explicitly" not in result.stderr


def test_an_empty_flag_counts_as_not_given_and_the_variable_is_named(gitlab, mixed):
    # The component passes --databand-url "$DATABAND_URL"; a protected variable on an unprotected branch is empty.
    args = ["resend", "--project", "42", "--pipeline", "9001", "--databand-url", ""]
    result = cli_run(args, {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert result.exit_code == 2 and "DATABAND_URL" in result.stderr.split("--databand-url")[0]
    flags = {"databand_url": "", "namespace": " "}
    settings = Settings.from_env({"DATABAND_URL": "https://databand.example.com/x"}, flags)
    assert settings.databand_url == "https://databand.example.com/x"
    assert settings.source("databand_url") == "DATABAND_URL"
    assert settings.namespace is None


def test_a_project_flag_beats_the_jobs_ci_variables_run_ids_included(gitlab):
    """resend --project X inside a job of another project, with only the job token: X is reported,
    with X's run IDs, exactly as a read_api token outside any job reports it."""
    other = make_project(gitlab.url, id=77, path="other/team")
    pipeline = make_pipeline(other, 9100, status="success")
    gitlab.add_pipeline(other, pipeline, [make_job(other, pipeline, 1, "build", "build", "success")])
    job_of_42 = pipelines.ci_env(pipelines.mixed(gitlab.url), gitlab.url, job_token=gitlab.job_token)
    args = ["resend", "--project", "77", "--pipeline", "9100", "--dry-run", "--json"]
    inside = cli_run(args, {**job_of_42, "GITLAB_URL": gitlab.url})
    outside = cli_run(args, {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert inside.exit_code == 0 and outside.exit_code == 0, inside.output + outside.output
    root_inside, root_outside = json.loads(inside.stdout)[0], json.loads(outside.stdout)[0]
    expected = ids.pipeline_run_id(ids.server_key(gitlab.url), 77, 9100)
    assert root_inside["run"]["runId"] == root_outside["run"]["runId"] == expected


def test_settings_resolve_the_ci_context_once_typed():
    settings = Settings.from_env({"GITLAB_CI": "true", "CI_PROJECT_ID": "42", "CI_PIPELINE_ID": "9001",
                                  "CI_JOB_ID": "7", "CI_JOB_STATUS": "failed", "CI_PROJECT_DIR": "/builds/x",
                                  "CI_SERVER_URL": "https://gitlab.example.com"})
    context = settings.context
    assert (context.in_job, context.project_id, context.pipeline_id, context.job_id, context.job_status,
            context.project_dir, context.server_url) == (True, 42, 9001, 7, "failed", "/builds/x",
                                                         "https://gitlab.example.com")
    assert context.describes(42, 9001) and not context.describes(77, 9001) and not context.describes(42, 1)
    assert Settings.from_env({}).context.in_job is False


def test_a_log_endpoint_answering_html_only_leaves_the_log_out(gitlab):
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 77, status="failed")
    gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 1, "load", "etl", "failed",
                                                     failure_reason="script_failure")])
    gitlab.fail(r"/jobs/1/trace", 404, body=b"<html>gone</html>", headers={"Content-Type": "text/html"})
    report = lib.collect(settings_for(gitlab), 42, 77)
    assert [job.log_tail for job in report.pipeline.jobs] == [None]
    assert any("the log of job 'load' (GitLab answered HTTP 404, text/html, which is not JSON but an HTML page)" in note
               for note in report.notes)


def test_a_test_case_output_sent_as_an_object_becomes_readable_text():
    from reporter.gitlab import parse

    case = {"name": "t", "status": "failed", "system_output": {"message": "expected 2", "type": "AssertionError"}}
    [result] = parse.test_results({"name": "unit", "total_count": 1, "failed_count": 1}, [case], 1, str).cases
    assert result.message == "message: expected 2; type: AssertionError"


@pytest.mark.parametrize("suite, cases", [
    ({"name": "unit", "total_count": "many"}, []),
    ("unit", []),
    ({"name": "unit"}, ["a case that is a string"]),
])
def test_a_test_report_of_the_wrong_shape_is_a_shape_error(suite, cases):
    from reporter.gitlab import parse

    with pytest.raises(parse.ShapeError):
        parse.test_results(suite, cases, 1, str)


def test_a_backfill_reads_every_pipeline_on_the_one_client_of_the_command(tmp_path):
    """The listing and every pipeline go through one session: with one request in flight at a time
    and connections kept alive, the whole backfill is one TCP connection."""
    from standins import GitLabStandIn

    with GitLabStandIn(keep_alive=True) as gitlab:
        project = make_project(gitlab.url)
        for i in range(3):
            pipeline = make_pipeline(project, 500 + i, status="success", created_at="2026-10-02T10:00:00.000Z")
            gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 5000 + i, "build", "build", "success")])
        settings = settings_for(gitlab, dry_run=True, gitlab_concurrency=1)
        plan = backfill.plan(settings, "42", "2026-10-01", None, (), str(tmp_path / "cursor.json"))
        done = backfill.execute(settings, plan, 1, lambda result: None)
        assert [r.error for r in done.results] == [None, None, None]
        assert gitlab.count(r"/jobs$", unfiltered) == 3 and gitlab.connections == 1
