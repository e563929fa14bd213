"""parent-env: the variables dbt-ol, Spark and Airflow read, with the reporter's own IDs."""

from __future__ import annotations

import shlex

import pytest
from click.testing import CliRunner

import pipelines
from reporter.cli import cli


def job_env(gitlab, job):
    return {"CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/data-platform",
            "CI_PIPELINE_ID": "9001", "CI_JOB_ID": str(job["id"]), "CI_JOB_NAME": job["name"],
            "CI_JOB_STAGE": job["stage"]}


def parse_shell(text):
    values = {}
    for line in text.splitlines():
        assert line.startswith("export ")
        [assignment] = shlex.split(line[len("export "):])
        key, _, value = assignment.partition("=")
        values[key] = value
    return values


@pytest.mark.parametrize("name", ["compile", "unit 2/3", 'déploiement 🚀 "prod"/eu'])
def test_parent_env_matches_the_report(gitlab, name):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    job = next(j for j in sample.jobs if j["name"] == name)
    report = CliRunner().invoke(cli, ["resend", "--dry-run", "--project", "42", "--pipeline", "9001"],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert report.exit_code == 0, report.output
    import json

    events = json.loads(report.stdout)
    [mine] = [e for e in events if any(t["key"] == "gitlab.job_id" and t["value"] == str(job["id"])
                                       for t in e["run"]["facets"]["tags"]["tags"])]
    root = events[0]

    result = CliRunner().invoke(cli, ["parent-env"], env=job_env(gitlab, job))
    assert result.exit_code == 0, result.output
    values = parse_shell(result.stdout)
    assert values["OPENLINEAGE_PARENT_RUN_ID"] == mine["run"]["runId"]
    assert values["OPENLINEAGE_PARENT_JOB_NAME"] == mine["job"]["name"]
    assert values["OPENLINEAGE_PARENT_JOB_NAMESPACE"] == mine["job"]["namespace"]
    assert values["OPENLINEAGE_ROOT_PARENT_RUN_ID"] == root["run"]["runId"]
    assert values["OPENLINEAGE_ROOT_PARENT_JOB_NAME"] == root["job"]["name"]
    # dbt-ol reads OPENLINEAGE_PARENT_ID with parent_id.split("/") into exactly three parts
    namespace, job_name, run_id = values["OPENLINEAGE_PARENT_ID"].split("/")
    assert (namespace, job_name, run_id) == (mine["job"]["namespace"], mine["job"]["name"], mine["run"]["runId"])


def test_parent_env_dotenv_and_overrides(gitlab):
    job = {"id": 7, "name": "dbt", "stage": "transform"}
    env = {**job_env(gitlab, job), "DATABAND_NAMESPACE": "prod", "DATABAND_PIPELINE_NAME": "warehouse"}
    result = CliRunner().invoke(cli, ["parent-env", "--format", "dotenv"], env=env)
    assert result.exit_code == 0
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert lines["OPENLINEAGE_PARENT_JOB_NAME"] == "warehouse.transform.dbt"
    assert lines["OPENLINEAGE_PARENT_JOB_NAMESPACE"] == "prod"


def test_parent_env_outside_a_job_says_what_is_missing():
    result = CliRunner().invoke(cli, ["parent-env"], env={})
    assert result.exit_code == 2 and "CI_JOB_ID" in result.stderr
