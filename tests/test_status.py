from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reporter.snapshot import Job, Pipeline, mark_attempts
from reporter.status import KNOWN, composite, event_type, latest, stage_order, with_own_job

F = True  # allow_failure


@pytest.mark.parametrize("entries, expected, warnings", [
    ([("success", False)], "success", False),
    ([("success", False), ("failed", False)], "failed", False),
    ([("success", False), ("failed", F)], "success", True),
    ([("success", False), ("canceled", F)], "success", True),
    ([("success", False), ("manual", F)], "success", False),
    ([("manual", F)], "skipped", False),
    ([("skipped", False)], "skipped", False),
    ([("skipped", False), ("success", False)], "success", False),
    ([("success", False), ("canceled", False)], "canceled", False),
    ([("failed", False), ("canceled", False)], "failed", False),
    ([("created", False)], "created", False),
    ([("success", False), ("created", False)], "running", False),
    ([("success", False), ("pending", False)], "running", False),
    ([("pending", False), ("created", False)], "pending", False),
    ([("manual", False)], "manual", False),
    ([("success", False), ("manual", False)], "manual", False),
    ([("failed", False), ("running", False)], "running", False),
    ([("scheduled", False), ("success", False)], "scheduled", False),
    ([("failed", F), ("skipped", False)], "success", True),
    ([("preparing", False), ("failed", F)], "preparing", True),
    ([("waiting_for_resource", False), ("success", False)], "waiting_for_resource", False),
    ([("canceling", False), ("success", False)], "canceling", False),
])
def test_composite_follows_gitlab_rules(entries, expected, warnings):
    result = composite(entries)
    assert result.status == expected
    assert result.warnings is warnings


def test_composite_of_nothing_is_none():
    assert composite([]).status is None


statuses = st.sampled_from(sorted(KNOWN))


@given(st.lists(st.tuples(statuses, st.booleans()), min_size=1, max_size=12), st.randoms())
def test_composite_ignores_order(entries, rnd):
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert composite(entries) == composite(shuffled)


@given(st.lists(st.tuples(st.sampled_from(["success", "skipped"]), st.just(False)), max_size=5))
def test_allowed_failure_turns_success_into_warning(entries):
    assert composite([*entries, ("failed", True), ("success", False)]) .status == "success"
    assert composite([*entries, ("failed", True), ("success", False)]).warnings


def test_event_types():
    assert event_type("success") == "COMPLETE"
    assert event_type("failed") == "FAIL"
    assert event_type("canceled") == "ABORT"
    assert event_type("skipped") == "ABORT"
    assert event_type("manual") == "ABORT"
    assert event_type("running") == "RUNNING"
    assert event_type("pending") == "START"
    assert event_type("created") == "START"
    assert event_type("something_new") == "OTHER"


def _pipeline(jobs):
    return Pipeline(server="g", project_id=1, project_path="a/b", project_url="https://g/a/b", id=5, ref="main",
                    sha="s", status="running", web_url="https://g/a/b/-/pipelines/5", jobs=jobs)


NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_own_job_left_out_while_its_script_runs():
    p = _pipeline([Job(1, "a", "build", "success"), Job(2, "report", ".post", "running")])
    assert [j.id for j in with_own_job(p, 2, "running", NOW).jobs] == [1]


@pytest.mark.parametrize("ci_status, status", [("success", "success"), ("failed", "failed"),
                                                ("canceled", "canceled"), ("timedout", "failed")])
def test_own_job_reported_from_after_script(ci_status, status):
    p = _pipeline([Job(1, "a", "build", "success"), Job(2, "load", "build", "running")])
    own = with_own_job(p, 2, ci_status, NOW).jobs[1]
    assert own.status == status
    assert own.finished_at == NOW
    if ci_status == "timedout":
        assert own.failure_reason == "job_execution_timeout"


def test_stage_order_pins_pre_and_post():
    jobs = [Job(30, "r", ".post", "success"), Job(12, "t", "test", "success"), Job(11, "b", "build", "success"),
            Job(40, "b", "build", "success"), Job(50, "p", ".pre", "success")]
    assert stage_order(jobs) == [".pre", "build", "test", ".post"]


def test_attempts_numbered_and_only_latest_counts():
    jobs = mark_attempts([Job(9, "t", "test", "success"), Job(3, "t", "test", "failed"), Job(4, "u", "test", "success")])
    by_id = {j.id: j for j in jobs}
    assert (by_id[3].attempt, by_id[3].retried) == (1, True)
    assert (by_id[9].attempt, by_id[9].retried) == (2, False)
    assert sorted(j.id for j in latest(jobs)) == [4, 9]
