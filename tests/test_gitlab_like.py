"""The reader against stand-ins in their GitLab-like default (../shared/gitlab-api-facts.md): no
page count past 10,000 rows, logs sent whole, an empty job list for a token without build access,
a job token off its routes, a test summary that lags, retried bridges, blocked pipelines."""

from __future__ import annotations

import pytest
from standins import GitLabStandIn, generate_pipeline

from reporter import report as lib
from reporter.errors import GitLabError
from reporter.settings import Settings


def settings_for(gitlab, **given) -> Settings:
    return Settings(gitlab_url=gitlab.url, gitlab_token=gitlab.token, **given)


def waves(records) -> int:
    """The longest chain of requests each started after the one before it ended (server side)."""
    count, last_end = 0, float("-inf")
    for record in sorted(records, key=lambda r: r.finished):
        if record.started >= last_end:
            count, last_end = count + 1, record.finished
    return count


def test_pages_without_a_count_are_read_ahead_within_the_in_flight_bound():
    concurrency = 16
    # The latency makes waiting, not parsing (the stand-in shares this process), set the pace.
    with GitLabStandIn(keep_alive=True, latency=0.15) as gitlab:
        project, pipeline, jobs = generate_pipeline(gitlab.url, 12_345, seed=31)
        gitlab.add_pipeline(project, pipeline, jobs)
        report = lib.collect(settings_for(gitlab, gitlab_concurrency=concurrency), project["id"], pipeline["id"])
        assert len(report.pipeline.jobs) == 12_345
        # The pages of the listing, not the failed jobs' own listing beside them (one page here)
        pages = [r for r in gitlab.requests if r.path.endswith("/jobs") and "scope[]" not in r.query]
        assert "X-Total" not in str(pages)  # GitLab's own rule: past 10,000 rows no count
        # 124 pages, the last one short: the first page, then `concurrency` at a time; the few sent
        # past the short page are answered empty and dropped.
        assert 124 <= len(pages) <= 124 + concurrency - 1
        # About 1 + 123 / 16 = 9 waves when waiting sets the pace; one after another would be 124.
        # The bound leaves room for a loaded machine, where parsing (in this process) stretches waves.
        assert waves(pages) <= 124 / 4


def test_failed_jobs_logs_go_out_with_the_other_pages_not_a_wave_after_them():
    """GitLab lists newest first, so failed jobs are on every page, often the last; listed on their
    own beside page 1 (scope[]=failed), all their logs go out with pages 2.. of the listing, not
    once those pages are in. Causal, not timed: the stand-in holds pages 2.. until every log has
    been asked for (at most 5 s). With 12 pages and 25 logs, 37 in flight: the bound is raised."""
    import threading

    from hostile import HostileGitLab
    from standins import failed_only

    with HostileGitLab(keep_alive=True) as gitlab:
        project, pipeline, jobs = generate_pipeline(gitlab.url, 1_250, seed=21, failed_every=50)
        failed = {job["id"] for job in jobs if job["status"] == "failed"}
        gitlab.add_pipeline(project, pipeline, jobs, [], {i: b"ERROR: Job failed: exit code 1\n" for i in failed})
        asked: set[str] = set()
        every_log_asked = threading.Event()

        def count_log(request):
            asked.add(request.path)
            if len(asked) == len(failed):
                every_log_asked.set()

        held: list[bool] = []

        def hold_later_pages(request):
            if request.args.get("page") not in (None, "1") and "scope[]" not in request.args:
                held.append(every_log_asked.wait(5))

        gitlab.then(r"/trace$", count_log)
        gitlab.then(r"/pipelines/\d+/jobs\?", hold_later_pages)
        report = lib.collect(settings_for(gitlab, test_results=False, downstream_depth=0, gitlab_concurrency=40),
                             project["id"], pipeline["id"])
        assert {job.id for job in report.pipeline.jobs if job.log_tail} == failed
        assert len(held) == 12 and all(held)  # every log was asked for while the pages were held
        assert gitlab.count(r"/trace$") == len(failed) == 25  # each log read once, though listed twice
        assert gitlab.count(r"/jobs$", failed_only) == 1


def test_an_empty_job_list_is_a_token_without_build_access_not_an_empty_pipeline(databand, workdir):
    import pipelines
    from clirun import env_for, resend

    with GitLabStandIn(build_access=False) as gitlab:  # GitLab answers such a token 200 []
        pipelines.mixed(gitlab.url).install(gitlab)
        # With a read_api token the bridges' 403 says it first; with a job token only jobs are read.
        refused = resend(env_for(gitlab, databand))
        env = {**env_for(gitlab, databand, CI_JOB_TOKEN=gitlab.job_token), "GITLAB_TOKEN": ""}
        result = resend(env)
    assert refused.exit_code == 3 and "GitLab forbade reading" in refused.stderr and "/bridges" in refused.stderr
    assert result.exit_code == 3, result.output
    [line] = [line for line in result.stderr.splitlines() if "error:" in line]
    assert "GitLab listed no jobs for pipeline 9001 of project 42" in line
    assert "the CI_JOB_TOKEN may read the pipeline but not its jobs" in line and "GITLAB_TOKEN" in line
    assert databand.payloads == []


def test_a_job_token_on_a_route_closed_to_it_names_that_cause(databand, tmp_path):
    # The CLI's sweep stops before this (settings.gitlab(lists=True)); a library caller of the
    # listing still gets GitLab's 404 named for what it is.
    from pipelines import mixed

    from reporter import backfill
    from reporter.errors import ReporterError
    from reporter.settings import Settings

    with GitLabStandIn() as gitlab:
        mixed(gitlab.url).install(gitlab)
        env = {"GITLAB_URL": gitlab.url, "CI_JOB_TOKEN": gitlab.job_token, "DATABAND_URL": databand.url,
               "DATABAND_ACCESS_TOKEN": databand.token}
        with pytest.raises(ReporterError) as caught:
            backfill.sweep_plan(Settings.from_env(env), "42", 26, str(tmp_path / "c.json"))
    message = str(caught.value)
    assert caught.value.exit_code == 3, message
    assert "GitLab does not take a CI_JOB_TOKEN on GET /api/v4/projects/42/pipelines" in message
    assert "answered 404 as to an anonymous caller" in message and "GITLAB_TOKEN" in message
    assert "check the project and pipeline ids" not in message


JUNIT = [{"file_type": "junit", "size": 912, "filename": "junit.xml.gz", "file_format": "gzip"}]


def _tested_pipeline(gitlab):
    from standins import make_job, make_pipeline, make_project

    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 81, status="success")
    unit = make_job(project, pipeline, 1, "unit", "test", "success")
    lint = make_job(project, pipeline, 2, "lint", "test", "success")
    for job in (unit, lint):
        job["artifacts"] = list(JUNIT)
    case = {"name": "t", "classname": "c", "status": "success", "execution_time": 0.1, "system_output": None}
    suites = [{"name": "unit", "build_ids": [1], "test_cases": [case]},
              {"name": "lint", "build_ids": [2], "test_cases": [case, case]}]
    gitlab.add_pipeline(project, pipeline, [unit, lint], test_suites=suites)
    return project, pipeline


def _quick(gitlab):
    from reporter.settings import ReadBounds

    return settings_for(gitlab, gitlab_bounds=ReadBounds(tests_lag=0.2))


def test_test_results_that_lag_a_just_finished_job_are_read_again_once():
    with GitLabStandIn() as gitlab:
        project, pipeline = _tested_pipeline(gitlab)
        gitlab.lag_test_summary([2], reads=1)  # GitLab's worker has not processed lint's report yet
        report = lib.collect(_quick(gitlab), project["id"], pipeline["id"])
        assert gitlab.count(r"/test_report_summary$") == 2
    tests = {job.name: job.tests for job in report.pipeline.jobs}
    assert tests["unit"].counts["total"] == 1 and tests["lint"].counts["total"] == 2
    assert not any("test results" in note for note in report.notes)


def test_test_results_still_missing_are_said_with_the_resend_command():
    with GitLabStandIn() as gitlab:
        project, pipeline = _tested_pipeline(gitlab)
        gitlab.lag_test_summary([2], reads=5)
        report = lib.collect(_quick(gitlab), project["id"], pipeline["id"])
        assert gitlab.count(r"/test_report_summary$") == 2  # once more, not again and again
    tests = {job.name: job.tests for job in report.pipeline.jobs}
    assert tests["unit"].counts["total"] == 1 and tests["lint"] is None
    [note] = [note for note in report.notes if "test results of" in note]
    assert "'lint'" in note and "had not processed their JUnit reports yet" in note
    assert "resend --project 42 --pipeline 81" in note


def test_no_second_read_when_every_junit_job_is_in_the_summary():
    with GitLabStandIn() as gitlab:
        project, pipeline = _tested_pipeline(gitlab)
        lib.collect(_quick(gitlab), project["id"], pipeline["id"])
        assert gitlab.count(r"/test_report_summary$") == 1


def test_every_attempt_of_a_retried_bridge_is_reported():
    from standins import make_bridge, make_job, make_pipeline, make_project

    with GitLabStandIn() as gitlab:
        project = make_project(gitlab.url)
        pipeline = make_pipeline(project, 82, status="success")
        gitlab.add_pipeline(project, pipeline, [make_job(project, pipeline, 1, "build", "build", "success")],
                            [make_bridge(project, pipeline, 2, "deploy", "deploy", "failed"),
                             make_bridge(project, pipeline, 3, "deploy", "deploy", "success")])
        report = lib.collect(settings_for(gitlab, downstream_depth=0), project["id"], pipeline["id"])
    bridges = sorted((j.id, j.attempt, j.retried, j.status) for j in report.pipeline.jobs if j.kind == "bridge")
    assert bridges == [(2, 1, True, "failed"), (3, 2, False, "success")]
    runs = [e for e in report.events if e["job"]["name"].endswith(".deploy.deploy")]
    assert len({e["run"]["runId"] for e in runs}) == 2  # each attempt is a run of its own
    assert sorted(e["eventType"] for e in runs) == ["COMPLETE", "FAIL"]


def test_gitlab_com_s_throttle_is_waited_out_within_the_budget_a_line_per_wait():
    import pipelines

    with GitLabStandIn() as gitlab:  # the stand-in's clock is the real one here: the reader's waits are
        pipelines.mixed(gitlab.url).install(gitlab)
        gitlab.throttle(window=1, limit=3)  # a 1 s window, 3 requests in each
        said: list[str] = []
        report = lib.collect(settings_for(gitlab, progress=said.append, gitlab_timeout=30), 42, 9001)
        throttled = [r for r in gitlab.requests if r.status == 429]
    assert report.pipeline.jobs and throttled
    assert len(said) == len(throttled)  # one line per wait, each the wait GitLab asked for
    # GET for REST, POST for the needs graph's GraphQL query: the same policy waits for both.
    assert all(line.startswith(("GitLab answered 429 to GET ", "GitLab answered 429 to POST /api/graphql"))
               and "trying again in " in line for line in said)


def test_a_throttle_window_past_the_budget_is_one_line_not_a_sleep():
    import time

    import pipelines

    with GitLabStandIn() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        gitlab.throttle(window=3600, limit=0, retry_after=False)  # RateLimit-Reset only, an hour away
        started = time.monotonic()
        with pytest.raises(GitLabError) as refused:
            lib.collect(settings_for(gitlab, gitlab_timeout=5), 42, 9001)
    assert time.monotonic() - started < 3
    assert "GitLab is rate-limiting (429)" in str(refused.value) and "--gitlab-timeout" in str(refused.value)
