from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reporter.snapshot import Job, Pipeline, mark_attempts
from reporter.status import (KNOWN, composite, event_type, latest, pipeline_status, stage_order, stage_status,
                             with_own_job)

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
    # composite.rb puts canceling after every active status, just before failed
    ([("canceling", False), ("failed", False)], "canceling", False),
    ([("canceling", False), ("running", False)], "running", False),
    ([("canceling", False), ("created", False)], "running", False),
    ([("canceling", False), ("manual", False)], "manual", False),
    ([("canceling", False), ("manual", F)], "canceling", False),
    ([("canceling", False), ("scheduled", False)], "scheduled", False),
    ([("canceling", False), ("preparing", False)], "preparing", False),
    ([("canceling", False), ("waiting_for_resource", False)], "waiting_for_resource", False),
    ([("canceling", False), ("waiting_for_callback", False)], "waiting_for_callback", False),
    ([("canceling", F), ("success", False)], "canceling", False),  # may fail, but has not yet
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


def _pipeline(jobs, status="running"):
    return Pipeline(server="g", project_id=1, project_path="a/b", project_url="https://g/a/b", id=5, ref="main",
                    sha="s", status=status, web_url="https://g/a/b/-/pipelines/5", jobs=jobs)


NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_own_job_counts_as_the_success_its_script_will_end_in():
    p = _pipeline([Job(1, "a", "build", "success"), Job(2, "report", ".post", "running", allow_failure=True)])
    own = with_own_job(p, 2, "running", NOW).jobs[1]
    assert (own.status, own.allow_failure, own.finished_at) == ("success", True, NOW)
    assert with_own_job(p, 2, None, NOW).jobs[1].status == "success"  # no CI_JOB_STATUS before GitLab 13.5


@pytest.mark.parametrize("others, before, after", [
    ([("skipped", False), ("skipped", False)], "skipped", "success"),
    ([("skipped", False), ("manual", True)], "skipped", "success"),
    ([("manual", True)], "skipped", "success"),
    ([("failed", True), ("skipped", False)], "success", "success"),
    ([("failed", False), ("skipped", False)], "failed", "failed"),
    ([("canceled", False), ("success", False)], "canceled", "canceled"),
])
def test_own_job_changes_the_pipeline_status_as_it_will_in_gitlab(others, before, after):
    jobs = [Job(i, f"j{i}", "build", status, allow_failure) for i, (status, allow_failure) in enumerate(others)]
    p = _pipeline([*jobs, Job(99, "report", ".post", "running")])
    assert pipeline_status(_pipeline(jobs)).status == before  # what the reporter said when it left itself out
    assert pipeline_status(with_own_job(p, 99, "running", NOW)).status == after


def test_own_job_left_out_by_exclude_job_still_counts():
    p = _pipeline([Job(1, "a", "build", "skipped")])  # the reader dropped job 99
    counted = with_own_job(p, 99, "running", NOW)
    assert [j.id for j in counted.jobs] == [1]
    assert pipeline_status(counted).status == "success"
    failed = with_own_job(p, 99, "failed", NOW)  # allow_failure unknown: GitLab's default, false
    assert pipeline_status(failed).status == "failed"


def test_own_job_with_a_status_we_do_not_know_is_left_as_gitlab_lists_it():
    p = _pipeline([Job(1, "a", "build", "success"), Job(2, "report", ".post", "running")])
    assert with_own_job(p, 2, "something_new", NOW) == p
    assert with_own_job(p, None, "running", NOW) == p


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


@pytest.mark.parametrize("stored, jobs, expected", [
    # Ci::Pipeline#set_status: a composite of created fires no event
    ("running", [("created", False)], "running"),
    # pending is `enqueue`, which puts a pipeline that already ran back to running
    ("success", [("pending", False)], "running"),
    ("failed", [("pending", False), ("skipped", False)], "running"),
    ("canceled", [("pending", False)], "running"),
    ("running", [("pending", False)], "running"),
    ("created", [("pending", False)], "pending"),
    ("skipped", [("pending", False)], "pending"),
    ("manual", [("pending", False), ("created", False)], "pending"),
    ("waiting_for_callback", [("pending", False)], "waiting_for_callback"),
    # a final status stays while the jobs agree the pipeline is over (they may be fewer than GitLab's)
    ("failed", [("success", False)], "failed"),
    ("success", [("running", False), ("success", False)], "running"),
    ("running", [("success", False), ("failed", True)], "success"),
])
def test_pipeline_status_moves_as_gitlab_moves_it(stored, jobs, expected):
    p = _pipeline([Job(i, f"j{i}", "test", s, a) for i, (s, a) in enumerate(jobs)], status=stored)
    assert pipeline_status(p).status == expected


def test_a_status_we_do_not_know_is_never_guessed():
    p = _pipeline([Job(1, "a", "build", "success"), Job(2, "b", "build", "frozen")], status="running")
    assert pipeline_status(p).status == "running"  # GitLab's word, not composite.rb's fallback, failed
    assert stage_status(p.jobs).status == "frozen"
    assert event_type(stage_status(p.jobs).status) == "OTHER"


def test_stage_status_of_created_jobs_keeps_what_gitlab_stored():
    jobs = [Job(1, "deploy", "deploy", "created")]
    assert stage_status(jobs).status == "created"
    assert stage_status(jobs, stored="skipped").status == "skipped"
    assert stage_status([Job(1, "old", "deploy", "failed", retried=True), Job(2, "old", "deploy", "success")]
                        ).status == "success"
