"""Properties of the events over generated pipelines (hypothesis): whatever the stages, statuses,
retries, allowed failures and missing times, the events are valid and consistent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import olschema
from reporter import ids
from reporter.events import Naming, build_events
from reporter.snapshot import Job, Pipeline, mark_attempts
from reporter.status import KNOWN, event_type, pipeline_status, stage_status

NAMING = Naming(namespace="gitlab:gitlab.example.com", pipeline_name="acme.dp", project_name="acme/dp")
BASE = datetime(2026, 11, 1, tzinfo=timezone.utc)

names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
times = st.one_of(st.none(), st.integers(0, 10_000).map(lambda s: BASE + timedelta(seconds=s)))
statuses = st.one_of(st.sampled_from(sorted(KNOWN)), st.sampled_from(["weird_new_status"]))


@st.composite
def pipelines(draw):
    stage_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    jobs: list[Job] = []
    next_id = 1
    for stage in stage_names:
        job_names = draw(st.lists(names, min_size=1, max_size=5, unique=True))
        for name in job_names:
            for _attempt in range(draw(st.integers(1, 3))):
                created, started, finished = draw(times), draw(times), draw(times)
                jobs.append(Job(id=next_id, name=name, stage=stage, status=draw(statuses),
                                allow_failure=draw(st.booleans()),
                                kind=draw(st.sampled_from(["job", "job", "bridge"])),
                                created_at=created, started_at=started, finished_at=finished,
                                failure_reason=draw(st.sampled_from([None, "script_failure", "odd_reason"])),
                                web_url=f"https://gitlab.example.com/acme/dp/-/jobs/{next_id}",
                                log_tail=draw(st.sampled_from([None, "", "some log"]))))
                next_id += 1
    return Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/dp",
                    project_url="https://gitlab.example.com/acme/dp", id=draw(st.integers(1, 10**9)),
                    ref=draw(names), sha="0" * 40, status=draw(st.sampled_from(["running", "success", "failed"])),
                    web_url="https://gitlab.example.com/acme/dp/-/pipelines/1", created_at=draw(times),
                    started_at=draw(times), jobs=mark_attempts(jobs))


def tags(event):
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_events_are_valid_and_consistent(pipeline):
    events = build_events(pipeline, NAMING, BASE)
    olschema.assert_valid(events)

    # one root, first; every other run's parent exists and names the root
    roots = [e for e in events if "parent" not in e["run"]["facets"]]
    assert roots == [events[0]]
    run_ids = [e["run"]["runId"] for e in events]
    assert len(run_ids) == len(set(run_ids))
    for event in events[1:]:
        parent = event["run"]["facets"]["parent"]
        assert parent["run"]["runId"] in run_ids
        assert parent["root"]["run"]["runId"] == events[0]["run"]["runId"]

    # every job attempt exactly once, under the right stage
    attempts = [int(tags(e)["gitlab.job_id"]) for e in events if "gitlab.job_id" in tags(e)]
    assert sorted(attempts) == sorted(j.id for j in pipeline.jobs)
    for job in pipeline.jobs:
        [event] = [e for e in events if tags(e).get("gitlab.job_id") == str(job.id)]
        assert event["job"]["name"] == ids.job_job_name("acme.dp", job.stage, job.name)
        assert event["eventType"] == event_type(job.status)

    # the pipeline and each stage carry the status GitLab's rules give them (tests/test_gitlab_status_spec.py
    # checks those rules against GitLab's own tables), and the event type that goes with it
    expected = pipeline_status(pipeline).status
    assert tags(events[0])["gitlab.status"] == expected
    assert events[0]["eventType"] == event_type(expected)
    for stage in {j.stage for j in pipeline.jobs}:
        [event] = [e for e in events if e["job"]["name"] == ids.stage_job_name("acme.dp", stage)]
        assert tags(event)["gitlab.status"] == stage_status([j for j in pipeline.jobs if j.stage == stage]).status


@settings(max_examples=60, deadline=None)
@given(pipelines(), st.integers(0, 10**6))
def test_run_ids_do_not_depend_on_when_or_how_often(pipeline, seconds_later):
    first = build_events(pipeline, NAMING, BASE)
    again = build_events(pipeline, NAMING, BASE + timedelta(seconds=seconds_later))
    assert [e["run"]["runId"] for e in first] == [e["run"]["runId"] for e in again]
    assert [e["job"]["name"] for e in first] == [e["job"]["name"] for e in again]
