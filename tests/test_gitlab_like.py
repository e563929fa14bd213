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
