"""Issue 21's run facets and tags: processing_engine on every run, flaky jobs, estimated compute
minutes, and the jobDependencies builder (the needs graph's reader: test_needs.py); every event
validated against the OpenLineage schemas."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import olschema
import pipelines
from reporter import __version__, cost, facets, summary
from reporter import events as reporter_events
from reporter import report as lib
from reporter.ids import Naming
from reporter.settings import Settings
from reporter.snapshot import Job, Pipeline, mark_attempts
from reporter.status import flaky

NOW = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
NAMING = Naming("gitlab:gitlab.example.com", "acme.dp", "acme/dp")


def tags(event: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in event["run"]["facets"]["tags"]["tags"]}


def snapshot(jobs, **kw) -> Pipeline:
    return Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/dp",
                    project_url="https://gitlab.example.com/acme/dp", id=9001, ref="main", sha="a" * 40,
                    status="running", web_url="https://gitlab.example.com/acme/dp/-/pipelines/9001", created_at=T0,
                    jobs=jobs, **kw)


def ran(id, name, stage, status, seconds=None, tags=(), **kw) -> Job:
    return Job(id=id, name=name, stage=stage, status=status, created_at=T0, started_at=T0,
               finished_at=T0 + timedelta(seconds=seconds or 0), duration_seconds=seconds, tag_list=tuple(tags), **kw)


def build(pipeline, **kw):
    events = list(reporter_events.build_events(pipeline, NAMING, NOW, **kw))
    olschema.assert_valid(events)
    return events


def by_job_id(events):
    return {int(tags(e)["gitlab.job_id"]): e for e in events if "gitlab.job_id" in tags(e)}


# -- processing_engine ----------------------------------------------------------------------------

def settings_for(gitlab, **env) -> Settings:
    return Settings.from_env({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, **env})


def test_every_run_names_gitlab_its_version_and_the_reporter(gitlab):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    env = {**pipelines.ci_env(sample, gitlab.url, token=gitlab.token), "CI_SERVER_VERSION": "17.5.1-ee"}
    report = lib.collect(Settings.from_env(env), 42, sample.pipeline["id"])
    events = list(report.events)
    olschema.assert_valid(events)
    assert len(events) > 10
    for event in events:  # downstream pipelines' runs too
        facet = event["run"]["facets"]["processing_engine"]
        assert (facet["name"], facet["version"], facet["openlineageAdapterVersion"]) == ("GitLab", "17.5.1-ee",
                                                                                         __version__)


def test_without_gitlabs_version_unknown_stands_in(gitlab):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    # Outside a job, and in a job of another GitLab, where the stand-in has no /version (404).
    for env in ({}, {"CI_SERVER_VERSION": "16.0.0", "CI_SERVER_URL": "https://other.example.com"}):
        report = lib.collect(settings_for(gitlab, **env), 42, sample.pipeline["id"])
        versions = {e["run"]["facets"]["processing_engine"]["version"] for e in report.events}
        assert versions == {reporter_events.UNKNOWN_VERSION}


# -- flaky jobs -----------------------------------------------------------------------------------

def test_flaky_is_a_failure_then_a_pass_of_the_same_job():
    jobs = [ran(1, "unit", "test", "failed", 10), ran(2, "unit", "test", "success", 10),  # flaky
            ran(3, "lint", "test", "failed", 10), ran(4, "lint", "test", "failed", 10),  # failing, not flaky
            ran(5, "e2e", "test", "success", 10), ran(6, "e2e", "test", "success", 10),  # retried, passing
            ran(7, "deploy", "deploy", "failed", 5), ran(8, "deploy", "deploy", "success", 5),
            ran(9, "deploy", "deploy", "failed", 5),  # passed once after failing: flaky, whatever came after
            ran(10, "unit", "other", "success", 10)]  # another stage's unit: its own job
    assert flaky(jobs) == {2, 9}


def test_flaky_tag_and_summary_count_agree_from_the_snapshot_and_from_the_events():
    jobs = [ran(1, "unit", "test", "failed", 10), ran(2, "unit", "test", "success", 10),
            ran(3, "lint", "test", "success", 10)]
    pipeline = snapshot(mark_attempts(jobs))
    events = build(pipeline)
    runs = by_job_id(events)
    assert tags(runs[2])["gitlab.flaky"] == "true"
    assert "gitlab.flaky" not in tags(runs[1]) and "gitlab.flaky" not in tags(runs[3])
    for view in (summary.from_snapshot(pipeline), summary.from_events(events)):
        assert summary.flaky_count(view) == 1
        assert summary.counts_line(view).endswith("; 1 flaky (failed, then passed on a retry)")


def test_the_sample_pipelines_flaky_job_is_counted(gitlab):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    report = lib.collect(settings_for(gitlab), 42, sample.pipeline["id"])
    [tagged] = [e for e in report.events if tags(e).get("gitlab.flaky")]
    assert tagged["job"]["name"].endswith(".flaky") and tags(tagged)["gitlab.status"] == "success"


# -- compute minutes ------------------------------------------------------------------------------

@pytest.mark.parametrize("given, parsed", [
    ("", {}), ("big=3", {"big": 3.0}), ("big=3 small=0.5", {"big": 3.0, "small": 0.5}),
    (("big=3", "gpu=7.5"), {"big": 3.0, "gpu": 7.5}), ("a=b=2", {"a=b": 2.0}), ("free=0", {"free": 0.0}),
])
def test_cost_factors_parse_from_flags_and_variables(given, parsed):
    assert cost.parse_cost_factors(given) == parsed


@pytest.mark.parametrize("given", ["big", "big=", "=3", "big=x", "big=-1", "big=1e9", "big=nan", "big=inf"])
def test_a_wrong_cost_factor_says_what_it_must_be(given):
    with pytest.raises(ValueError, match=r"^TAG=FACTOR pairs") as caught:
        cost.parse_cost_factors(given)
    assert repr(given) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("job, given, factor", [
    (ran(1, "j", "s", "success", 60), {}, 1.0),  # GitLab's default
    (ran(1, "j", "s", "success", 60, ["saas-linux-medium-amd64"]), {}, 2.0),
    (ran(1, "j", "s", "success", 60, ["docker", "saas-linux-2xlarge-amd64"]), {}, 12.0),
    (ran(1, "j", "s", "success", 60, ["saas-macos-medium-m1"]), {}, 6.0),
    (ran(1, "j", "s", "success", 60, ["big", "saas-linux-medium-amd64"]), {"big": 4.0}, 4.0),  # given wins
    (ran(1, "j", "s", "success", 60, ["big", "gpu"]), {"big": 4.0, "gpu": 9.0}, 9.0),  # the highest
    (ran(1, "j", "s", "success", 60, ["saas-linux-medium-amd64"], runner_type="project_type"), {}, 0.0),
    (ran(1, "j", "s", "success", 60, runner_type="instance_type"), {}, 1.0),
    (ran(1, "t", "s", "success", 60, kind="bridge"), {"big": 4.0}, 0.0),
])
def test_cost_factor_by_gitlabs_rules(job, given, factor):
    assert cost.cost_factor(job, given) == factor


def test_compute_minutes_per_job_stage_and_pipeline():
    jobs = [ran(1, "unit", "test", "failed", 90, ["saas-linux-medium-amd64"]),  # 3, a retried attempt counts
            ran(2, "unit", "test", "success", 30, ["saas-linux-medium-amd64"]),  # 1
            ran(3, "lint", "test", "success", 45, ["big"]),  # 45 s x 4 = 3
            ran(4, "build", "build", "success", 120),  # 2
            Job(id=5, name="never", stage="build", status="skipped"),  # no duration: no estimate
            ran(6, "trigger", "deploy", "success", 600, kind="bridge")]  # 0
    events = build(snapshot(mark_attempts(jobs)), cost_factors={"big": 4.0})
    runs = by_job_id(events)
    assert [(tags(runs[i]).get("gitlab.cost_factor"), tags(runs[i]).get("gitlab.compute_minutes"))
            for i in (1, 2, 3, 4, 5, 6)] == [("2", "3"), ("2", "1"), ("4", "3"), ("1", "2"), (None, None),
                                             (None, "0")]
    stages = {e["job"]["name"].rsplit(".", 1)[1]: tags(e) for e in events
              if e["job"]["facets"]["jobType"]["jobType"] == "STAGE"}
    assert {name: t["gitlab.compute_minutes"] for name, t in stages.items()} == {"build": "2", "test": "7",
                                                                                "deploy": "0"}
    assert tags(events[0])["gitlab.compute_minutes"] == "9"


def test_docs_list_the_new_tags():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "event-tags.md").read_text()
    for tag in ("gitlab.flaky", "gitlab.cost_factor", "gitlab.compute_minutes", "--cost-factor TAG=F"):
        assert f"`{tag}`" in doc, tag


# -- jobDependencies ------------------------------------------------------------------------------

def test_job_dependencies_facet_validates_and_uses_the_schemas_field_names():
    events = build(snapshot([ran(1, "unit", "test", "success", 10)]))
    upstream = [facets.dependency("gitlab:gitlab.example.com", "acme.dp.build.compile",
                                  "3af2b847-4734-5b18-937e-82cbd2106216", status_trigger_rule="EXECUTE_ON_SUCCESS"),
                facets.dependency("gitlab:gitlab.example.com", "acme.dp.build.lint", sequence_trigger_rule=None)]
    downstream = [facets.dependency("gitlab:gitlab.example.com", "acme.dp.deploy.trigger.acme.child",
                                    dependency_type=facets.DIRECT_INVOCATION)]
    event = json.loads(json.dumps(events[-1]))
    event["run"]["facets"]["jobDependencies"] = facets.job_dependencies(upstream, downstream, "ALL_SUCCESS")
    olschema.assert_valid([event])
    facet = event["run"]["facets"]["jobDependencies"]
    assert facet["upstream"][0] == {"job": {"namespace": "gitlab:gitlab.example.com", "name": "acme.dp.build.compile"},
                                    "run": {"runId": "3af2b847-4734-5b18-937e-82cbd2106216"},
                                    "sequence_trigger_rule": "FINISH_TO_START",
                                    "status_trigger_rule": "EXECUTE_ON_SUCCESS"}
    assert facet["upstream"][1] == {"job": {"namespace": "gitlab:gitlab.example.com", "name": "acme.dp.build.lint"}}
    assert facet["downstream"][0]["dependency_type"] == "DIRECT_INVOCATION" and "type" not in facet["downstream"][0]
    assert "downstream" not in facets.job_dependencies(upstream)  # absent, not empty


def test_a_job_dependency_with_a_bad_run_id_is_caught_by_the_schema():
    events = build(snapshot([ran(1, "unit", "test", "success", 10)]))
    event = json.loads(json.dumps(events[-1]))
    event["run"]["facets"]["jobDependencies"] = facets.job_dependencies(
        [facets.dependency("ns", "name", "not-a-uuid")])
    assert [p for p in olschema.errors(event) if "jobDependencies" in p]

