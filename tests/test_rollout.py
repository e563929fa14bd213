"""Group-wide rollout with a pipeline execution policy (docs/pipeline-execution-policy.md): the report
job in `.pipeline-policy-post`, the reserved stages placed as GitLab places them, and GitLab's
`:policy-<policy project id>-<index>` suffix on a job whose name clashed.

gitlab-ci-local cannot run policies, so the pipeline is served by the GitLab stand-in as GitLab would
list it once the policy's jobs are merged in, and the report runs as the policy's report job would.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

import olschema
import pipelines
from reporter import ids
from reporter.cli import cli
from reporter.snapshot import Job, Pipeline, base_name, without
from reporter.status import pipeline_status, stage_order, with_own_job
from standins import make_job, make_pipeline, make_project
from test_component import render

NOW = datetime(2026, 11, 20, 11, 0, tzinfo=timezone.utc)


def job(id, stage, name="j", status="success"):
    return Job(id=id, name=name, stage=stage, status=status)


def test_reserved_stages_go_where_gitlab_puts_them_whatever_the_job_ids():
    # GitLab's ReservedStagesInjector: [.pipeline-policy-pre, *stages, .pipeline-policy-post], the
    # stages already wrapped in .pre and .post. Policy jobs are merged in later: their ids say nothing.
    jobs = [job(50, ".pipeline-policy-post"), job(40, ".pipeline-policy-pre"), job(3, ".post"), job(1, ".pre"),
            job(2, "build"), job(4, "test")]
    assert stage_order(jobs) == [".pipeline-policy-pre", ".pre", "build", "test", ".post", ".pipeline-policy-post"]
    assert stage_order([job(9, "deploy"), job(1, ".pipeline-policy-post"), job(5, "build")]) == [
        "build", "deploy", ".pipeline-policy-post"]


@pytest.mark.parametrize("name, base", [
    ("databand-report:policy-77-0", "databand-report"), ("lint:policy-1-12", "lint"),
    ("databand-report", "databand-report"), ("a:policy-x-0", "a:policy-x-0"), ("b:policy-1-2 3", "b:policy-1-2 3"),
    ("c:policy-1-2:policy-3-4", "c:policy-1-2"),
])
def test_base_name_takes_off_only_gitlabs_suffix(name, base):
    assert base_name(name) == base


def test_exclusion_holds_for_a_suffixed_job():
    jobs = [job(1, "build", "lint"), job(2, "build", "lint:policy-77-0"), job(3, ".post", "databand-report"),
            job(4, ".pipeline-policy-post", "databand-report:policy-77-0"),
            job(5, ".pipeline-policy-post", "databand-report-resend:policy-77-0"), job(6, "test", "unit")]
    # The component's own pattern, and a plain name the user gave.
    assert [j.id for j in without(jobs, ("databand-report*",))] == [1, 2, 6]
    assert [j.id for j in without(jobs, ("lint",))] == [3, 4, 5, 6]
    assert [j.id for j in without(jobs, ("lint:policy-77-0",))] == [1, 3, 4, 5, 6]  # the suffixed one alone


def test_the_policy_report_job_counts_in_the_status_though_left_out():
    jobs = [job(1, "build", "build"), job(2, ".post", "databand-report", "success"),
            job(3, ".pipeline-policy-post", "databand-report:policy-77-0", "running")]
    pipeline = Pipeline(server="gitlab.example.com", project_id=42, project_path="acme/dp", project_url="u", id=1,
                        ref="main", sha="s", status="running", web_url="w",
                        jobs=without(jobs, ("databand-report*",)))
    assert [j.name for j in pipeline.jobs] == ["build"]
    counted = with_own_job(pipeline, 3, "failed", NOW)  # its after_script: the job failed
    assert pipeline_status(counted).status == "failed"
    assert pipeline_status(with_own_job(pipeline, 3, "running", NOW)).status == "success"


@pytest.mark.parametrize("stage", [".pipeline-policy-post", ".pipeline-policy-pre", ".post", "report"])
def test_the_component_takes_the_policy_stages(stage):
    jobs = render({"stage": stage})
    assert jobs["databand-report"]["stage"] == stage
    assert '--exclude-job "databand-report*"' in "\n".join(jobs["databand-report"]["script"])


def _policy_pipeline(gitlab):
    """A project pipeline with a policy merged in: a secret scan in .pipeline-policy-pre, the project's
    own report job in .post (it includes the component too), and the policy's, renamed by GitLab on
    the clash, in .pipeline-policy-post. Ids as GitLab might give them: the policy's jobs last."""
    project = make_project(gitlab.url)
    pipeline = make_pipeline(project, 9301, status="running")
    jobs = [
        make_job(project, pipeline, 11, "compile", "build", "success"),
        make_job(project, pipeline, 12, "unit", "test", "success"),
        make_job(project, pipeline, 13, "databand-report", ".post", "success"),
        make_job(project, pipeline, 21, "secret-detection", ".pipeline-policy-pre", "success"),
        make_job(project, pipeline, 22, "databand-report:policy-77-0", ".pipeline-policy-post", "running",
                 finished_at=None),
    ]
    gitlab.add_pipeline(project, pipeline, jobs)
    return pipelines.Sample(project, pipeline, jobs)


def test_a_policy_report_job_reports_the_pipeline_in_gitlabs_stage_order(gitlab):
    sample = _policy_pipeline(gitlab)
    env = {**pipelines.ci_env(sample, gitlab.url, token=gitlab.token), "CI_JOB_ID": "22",
           "CI_JOB_NAME": "databand-report:policy-77-0", "CI_JOB_STAGE": ".pipeline-policy-post"}
    result = CliRunner().invoke(cli, ["report", "--dry-run", "--json", "--exclude-job", "databand-report*"], env=env)
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    olschema.assert_valid(events)
    names = [e["job"]["name"] for e in events]
    stages = [e["job"]["name"] for e in events if e["job"]["facets"]["jobType"]["jobType"] == "STAGE"]
    pipeline_name = "acme.data-platform"
    assert stages == [ids.stage_job_name(pipeline_name, s) for s in (".pipeline-policy-pre", "build", "test")]
    assert not [n for n in names if "databand-report" in n]  # neither report job, suffixed or not
    root = events[0]
    # GitLab will call it a success once the policy's report job ends: it counted, unlisted.
    assert root["eventType"] == "COMPLETE"
    assert {t["key"]: t["value"] for t in root["run"]["facets"]["tags"]["tags"]}["gitlab.status"] == "success"
