"""Downstream pipelines (child and multi-project) under their bridges, and JUnit test results."""

from __future__ import annotations

import json

from click.testing import CliRunner

import olschema
import pipelines
from reporter.cli import cli
from standins import make_bridge, make_job, make_pipeline, make_project


def resend(gitlab, *args, pipeline="9001"):
    return CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", pipeline, *args],
                              env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}, catch_exceptions=False)


def parent_tree(gitlab):
    """A parent pipeline with a child pipeline (same project) and a multi-project downstream,
    whose own bridge starts a third pipeline; plus a bridge to a pipeline the token may not read."""
    parent_project = make_project(gitlab.url)
    other = make_project(gitlab.url, id=77, path="acme/warehouse")
    parent = make_pipeline(parent_project, 500, status="running")
    child = make_pipeline(parent_project, 501, status="success", source="parent_pipeline")
    multi = make_pipeline(other, 502, status="failed", source="pipeline")
    grandchild = make_pipeline(other, 503, status="success", source="parent_pipeline")
    gitlab.add_pipeline(parent_project, parent, [
        make_job(parent_project, parent, 1, "build", "build", "success"),
        make_job(parent_project, parent, 9, "databand-report", ".post", "running"),
    ], bridges=[
        make_bridge(parent_project, parent, 2, "child", "deploy", "success",
                    downstream_pipeline={"id": 501, "project_id": 42, "web_url": child["web_url"]}),
        make_bridge(parent_project, parent, 3, "warehouse", "deploy", "failed", allow_failure=True,
                    downstream_pipeline={"id": 502, "web_url": multi["web_url"]}),  # no project_id: the path
        make_bridge(parent_project, parent, 4, "secret-project", "deploy", "success",
                    downstream_pipeline={"id": 999, "project_id": 555,
                                         "web_url": f"{gitlab.url}/other/secret/-/pipelines/999"}),
    ])
    gitlab.add_pipeline(parent_project, child, [make_job(parent_project, child, 11, "child job", "test", "success")])
    gitlab.add_pipeline(other, multi, [make_job(other, multi, 21, "load", "etl", "failed",
                                                failure_reason="script_failure")],
                        bridges=[make_bridge(other, multi, 22, "deeper", "etl", "success",
                                             downstream_pipeline={"id": 503, "project_id": 77,
                                                                  "web_url": grandchild["web_url"]})],
                        traces={21: b"loading...\nERROR: warehouse refused\n"})
    gitlab.add_pipeline(other, grandchild, [make_job(other, grandchild, 31, "leaf", "build", "success")])


def by_name(events):
    return {e["job"]["name"]: e for e in events}


def test_downstream_pipelines_hang_under_their_bridges(gitlab):
    parent_tree(gitlab)
    result = resend(gitlab, pipeline="500")
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    olschema.assert_valid(events)
    names = by_name(events)
    root_id = events[0]["run"]["runId"]

    child_bridge = names["acme.data-platform.deploy.child"]
    child_pipeline = names["acme.data-platform.deploy.child.acme.data-platform"]
    assert child_pipeline["run"]["facets"]["parent"]["run"]["runId"] == child_bridge["run"]["runId"]
    assert child_pipeline["job"]["facets"]["jobType"]["jobType"] == "PIPELINE"
    child_job = names["acme.data-platform.deploy.child.acme.data-platform.test.child job"]
    assert child_job["run"]["facets"]["parent"]["root"]["run"]["runId"] == root_id

    multi = names["acme.data-platform.deploy.warehouse.acme.warehouse"]
    assert multi["eventType"] == "FAIL"
    load = names["acme.data-platform.deploy.warehouse.acme.warehouse.etl.load"]
    assert load["run"]["facets"]["log"]["logBody"].endswith("ERROR: warehouse refused")
    assert load["job"]["facets"]["sourceCodeLocation"]["repoUrl"].endswith("/acme/warehouse.git")
    leaf = "acme.data-platform.deploy.warehouse.acme.warehouse.etl.deeper.acme.warehouse.build.leaf"
    assert leaf in names  # two levels down, within the default depth

    # the unreadable one is noted, not fatal
    assert "downstream pipeline 999" in result.stderr
    # only one root: Databand sees one tree
    assert [e for e in events if "parent" not in e["run"]["facets"]] == [events[0]]


def test_downstream_depth_bounds_the_walk(gitlab):
    parent_tree(gitlab)
    one = json.loads(resend(gitlab, "--downstream-depth", "1", pipeline="500").stdout)
    assert not any(".deeper." in e["job"]["name"] for e in one)
    none = json.loads(resend(gitlab, "--downstream-depth", "0", pipeline="500").stdout)
    assert not any(e["job"]["name"].count("acme.") > 1 for e in none)


def test_downstream_runs_do_not_collide_with_its_own_report(gitlab):
    parent_tree(gitlab)
    from_parent = json.loads(resend(gitlab, pipeline="500").stdout)
    own = json.loads(CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "77", "--pipeline", "502"],
                                        env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}).stdout)
    assert not {e["run"]["runId"] for e in from_parent} & {e["run"]["runId"] for e in own}


def test_junit_results_become_the_test_facet(gitlab, monkeypatch):
    from reporter.gitlab import parse

    monkeypatch.setattr(parse, "MAX_TEST_CASES", 4)
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 600, status="failed")
    jobs = [make_job(project, pipeline, 1, "unit 1/2", "test", "success"),
            make_job(project, pipeline, 2, "unit 2/2", "test", "failed"),
            make_job(project, pipeline, 3, "docs", "test", "success")]
    cases = [{"name": f"test_{i}", "classname": "tests.test_api", "status": "success", "execution_time": 0.01}
             for i in range(3)]
    cases += [{"name": "test_fails", "classname": "tests.test_api", "status": "failed", "execution_time": 0.2,
               "system_output": f"AssertionError: 1 != 2 (token {pipelines.SECRET_IN_LOG})"},
              {"name": "test_skipped", "classname": "tests.test_api", "status": "skipped"},
              {"name": "test_broken", "classname": "tests.test_db", "status": "error",
               "system_output": "ConnectionError"}]
    gitlab.add_pipeline(project, pipeline, jobs, test_suites=[{"name": "unit", "build_ids": [1, 2], "test_cases": cases}])
    result = resend(gitlab, pipeline="600")
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    olschema.assert_valid(events)
    names = by_name(events)
    facet = names["acme.data-platform.test.unit 2%2F2"]["run"]["facets"]["test"]
    assert facet == names["acme.data-platform.test.unit 1%2F2"]["run"]["facets"]["test"]
    assert facet["counts"] == {"total": 6, "success": 3, "failed": 1, "skipped": 1, "error": 1}
    assert facet["suite"] == "unit" and facet["sharedBy"] == 2
    tests = facet["tests"]
    assert len(tests) == 4  # capped, failures first
    assert [t["status"] for t in tests[:2]] == ["fail", "fail"]
    failing = next(t for t in tests if t["name"] == "tests.test_api.test_fails")
    assert failing["params"]["message"].startswith("AssertionError: 1 != 2")
    assert pipelines.SECRET_IN_LOG not in result.stdout
    assert "test" not in names["acme.data-platform.test.docs"]["run"]["facets"]


def test_no_test_results_flag_skips_the_requests(gitlab):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    assert sample
    assert resend(gitlab, "--no-test-results").exit_code == 0
    assert gitlab.count(r"/test_report") == 0
