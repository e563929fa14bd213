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
        pages = [r for r in gitlab.requests if r.path.endswith("/jobs")]
        assert "X-Total" not in str(pages)  # GitLab's own rule: past 10,000 rows no count
        # 124 pages, the last one short: the first page, then `concurrency` at a time; the few sent
        # past the short page are answered empty and dropped.
        assert 124 <= len(pages) <= 124 + concurrency - 1
        page_waves = waves(pages)
        assert page_waves <= 1 + -(-123 // concurrency) + 2
        assert page_waves < 123 / 2  # one after another would be 124


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
    from click.testing import CliRunner
    from pipelines import mixed

    from reporter.cli import cli

    with GitLabStandIn() as gitlab:
        mixed(gitlab.url).install(gitlab)
        env = {"GITLAB_URL": gitlab.url, "CI_JOB_TOKEN": gitlab.job_token, "DATABAND_URL": databand.url,
               "DATABAND_ACCESS_TOKEN": databand.token}
        result = CliRunner().invoke(cli, ["sweep", "--project", "42", "--cursor", str(tmp_path / "c.json")], env=env)
    assert result.exit_code == 3, result.output
    assert "GitLab does not take a CI_JOB_TOKEN on GET /api/v4/projects/42/pipelines" in result.stderr
    assert "answered 404 as to an anonymous caller" in result.stderr and "GITLAB_TOKEN" in result.stderr
    assert "check the project and pipeline ids" not in result.stderr
