"""parent-env's forms for each consumer: OPENLINEAGE_CONTEXT, the Airflow DAG run conf and the Spark
listener's --conf options, all naming the runs the report sends (checked against resend --dry-run).

The keys are those the consumers' sources read (see reporter/handoff.py for where): no Spark here,
so the Spark form is checked by its keys and values, and by a shell reading it back as arguments.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipelines
from reporter import handoff
from reporter.cli import cli
from reporter.errors import ConfigError
from reporter.settings import Settings

REPORTER = Path(sys.executable).with_name("databand-gitlab-reporter")


def job_env(gitlab, job, **more):
    return {"CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/data-platform",
            "CI_PIPELINE_ID": "9001", "CI_JOB_ID": str(job["id"]), "CI_JOB_NAME": job["name"],
            "CI_JOB_STAGE": job["stage"], **more}


def reported(gitlab, job, settings):
    result = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001"],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, **settings})
    assert result.exit_code == 0, result.output
    events = json.loads(result.stdout)
    [mine] = [e for e in events if any(t["key"] == "gitlab.job_id" and t["value"] == str(job["id"])
                                       for t in e["run"]["facets"]["tags"]["tags"])]
    return events[0], mine


def parent_env(gitlab, job, form, settings):
    result = CliRunner().invoke(cli, ["parent-env", "--format", form], env=job_env(gitlab, job, **settings))
    assert result.exit_code == 0, result.output
    return result.stdout


def ref(event):
    return {"namespace": event["job"]["namespace"], "name": event["job"]["name"], "runId": event["run"]["runId"]}


SETTINGS = {
    "default names": {},
    "names with '/'": {"DATABAND_NAMESPACE": "team/prod", "DATABAND_PIPELINE_NAME": "acme/warehouse v2"},
}


def test_the_report_takes_a_name_with_a_slash():
    # Was refused for dbt-ol's sake; OPENLINEAGE_CONTEXT carries it now (settings call ids.check_name).
    settings = Settings.from_env({"DATABAND_PIPELINE_NAME": "acme/warehouse"}, {"namespace": "team/prod"})
    assert (settings.namespace, settings.pipeline_name) == ("team/prod", "acme/warehouse")


@pytest.fixture(params=["compile", 'déploiement 🚀 "prod"/eu'])
def sample_job(gitlab, request):
    sample = pipelines.mixed(gitlab.url).install(gitlab)
    return next(j for j in sample.jobs if j["name"] == request.param)


@pytest.mark.parametrize("case", SETTINGS)
def test_the_context_names_the_reported_job_and_pipeline(gitlab, sample_job, case):
    root, mine = reported(gitlab, sample_job, SETTINGS[case])
    values = {}
    for line in parent_env(gitlab, sample_job, "shell", SETTINGS[case]).splitlines():
        [assignment] = shlex.split(line.removeprefix("export "))
        key, _, value = assignment.partition("=")
        values[key] = value
    assert list(values)[0] == "OPENLINEAGE_CONTEXT"
    context = json.loads(values["OPENLINEAGE_CONTEXT"])
    # The shape openlineage-dbt's get_parent_run_metadata_from_context reads, nothing more.
    assert context == {"parent": {"run": {"runId": mine["run"]["runId"]},
                                  "job": {"namespace": mine["job"]["namespace"], "name": mine["job"]["name"]},
                                  "root": {"run": {"runId": root["run"]["runId"]},
                                           "job": {"namespace": root["job"]["namespace"], "name": root["job"]["name"]}}}}


@pytest.mark.parametrize("case", SETTINGS)
def test_airflow_conf_is_the_providers_dag_run_conf(gitlab, sample_job, case):
    root, mine = reported(gitlab, sample_job, SETTINGS[case])
    text = parent_env(gitlab, sample_job, "airflow-conf", SETTINGS[case])
    assert text.count("\n") == 1  # one line, for -c '...' or a REST body
    assert json.loads(text) == {"openlineage": {
        "parentRunId": mine["run"]["runId"], "parentJobNamespace": mine["job"]["namespace"],
        "parentJobName": mine["job"]["name"], "rootParentRunId": root["run"]["runId"],
        "rootParentJobNamespace": root["job"]["namespace"], "rootParentJobName": root["job"]["name"]}}


SPARK_KEYS = ["spark.openlineage.parentJobNamespace", "spark.openlineage.parentJobName",
              "spark.openlineage.parentRunId", "spark.openlineage.rootParentJobNamespace",
              "spark.openlineage.rootParentJobName", "spark.openlineage.rootParentRunId",
              "spark.openlineage.context"]


@pytest.mark.parametrize("case", SETTINGS)
def test_spark_conf_as_a_shell_reads_it(gitlab, sample_job, case, tmp_path):
    """The documented two lines: the options, read back by bash as spark-submit's arguments."""
    root, mine = reported(gitlab, sample_job, SETTINGS[case])
    (tmp_path / "spark.conf").write_text(parent_env(gitlab, sample_job, "spark-conf", SETTINGS[case]))
    done = subprocess.run(["bash", "-c", 'set -eo pipefail\neval "printf \'%s\\n\' $(cat spark.conf)"'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()
    assert args[0::2] == ["--conf"] * 7
    conf = dict(arg.split("=", 1) for arg in args[1::2])
    assert list(conf) == SPARK_KEYS
    assert [conf[k] for k in SPARK_KEYS[:6]] == [*ref(mine).values(), *ref(root).values()]
    parent = json.loads(conf["spark.openlineage.context"])["parent"]  # ParentRunContext's shape
    assert {**parent["job"], **parent["run"]} == ref(mine)
    assert {**parent["root"]["job"], **parent["root"]["run"]} == ref(root)


def test_a_failing_spark_conf_stops_the_job_in_the_documented_form(tmp_path):
    script = ("set -eo pipefail\ndataband-gitlab-reporter parent-env --format spark-conf > spark.conf\n"
              'eval "echo reached spark-submit $(cat spark.conf)"\n')
    env = {"PATH": f"{REPORTER.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "reached" not in done.stdout


# --- what GitLab's dotenv report would alter ------------------------------------------------------

def variables(**names):
    env = {"CI_SERVER_URL": "https://gitlab.example.com", "CI_PROJECT_ID": "42", "CI_PROJECT_PATH": "acme/dp",
           "CI_PIPELINE_ID": "9001", "CI_JOB_ID": "7", "CI_JOB_NAME": names.get("job", "dbt"),
           "CI_JOB_STAGE": "transform"}
    return handoff.parent_variables(env, names.get("namespace"), names.get("pipeline"))


def test_dotenv_keeps_the_json_context_intact():
    # GitLab's parser: each line matched by ^(.*?)=(.*)$ and stripped; quotes are kept.
    text = handoff.render(variables(namespace="team/prod", job='say "hi"/{x}'), "dotenv")
    parsed = dict(line.split("=", 1) for line in text.splitlines())
    assert json.loads(parsed["OPENLINEAGE_CONTEXT"])["parent"]["job"]["name"] == 'acme.dp.transform.say "hi"%2F{x}'


@pytest.mark.parametrize("name", ["pay $HOME", "x ${Y}", "a $$ b", "%PATH% win", "50%% off"])
def test_dotenv_refuses_what_gitlab_would_expand(name):
    with pytest.raises(ConfigError, match="--format shell"):
        handoff.render(variables(pipeline=name), "dotenv")
    assert name in handoff.render(variables(pipeline=name), "shell").replace("'\"'\"'", "'")


def test_dotenv_passes_the_reporters_own_escapes():
    # '%' in a stage or job name is escaped to %25, '.' to %2E: digits follow, never a variable name.
    text = handoff.render(variables(job="100% v1.2 %PATH%"), "dotenv")
    assert "acme.dp.transform.100%25 v1%2E2 %25PATH%25" in text


def test_dotenv_refuses_a_report_over_gitlabs_size_limit():
    handoff.render(variables(pipeline="p" * 400), "dotenv")  # well under
    with pytest.raises(ConfigError, match="5120"):
        handoff.render(variables(pipeline="p" * 800), "dotenv")
