"""parent-env: the variables dbt-ol, Spark and Airflow read, with the reporter's own IDs."""

from __future__ import annotations

import os
import pty
import shlex
import subprocess
import sys
from pathlib import Path

import json

import pytest
from click.testing import CliRunner

import pipelines
from reporter import handoff, ids
from reporter.cli import cli
from reporter.errors import ConfigError
from reporter.ids import check_name


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
    report = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001"],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert report.exit_code == 0, report.output

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


# --- names a tool can carry, and failures a shell script notices ---------------------------------

REPORTER = Path(sys.executable).with_name("databand-gitlab-reporter")


@pytest.mark.parametrize("value", ["gitlab:gitlab.example.com", "prod", "acme.data%2Eplatform", "a b",
                                   "déploiement 🚀 \"prod\"", "it's $HOME", "team/prod", "acme/warehouse"])
def test_check_name_passes_what_the_report_and_the_context_carry(value):
    assert check_name(value, "DATABAND_NAMESPACE") is value


@pytest.mark.parametrize("value, says", [
    ("", "is empty"), ("   ", "is empty"), (" prod", "blank"), ("prod\t", "blank"),
    ("a\nb", "line break"), ("a\rb", "line break"), ("a\x00b", "control"), ("a\u2028b", "line break"),
])
def test_check_name_refuses_in_one_line_naming_the_setting(value, says):
    with pytest.raises(ConfigError) as caught:
        check_name(value, "--pipeline-name")
    message = str(caught.value)
    assert message.startswith("--pipeline-name") and says in message
    assert "\n" not in message and "\r" not in message


@pytest.mark.parametrize("args, env", [
    (["--namespace", "team/prod"], {}),
    ([], {"DATABAND_NAMESPACE": "team/prod"}),
    (["--pipeline-name", "acme/warehouse"], {}),
    ([], {"DATABAND_PIPELINE_NAME": "acme/warehouse"}),
])
def test_a_slash_leaves_out_only_the_split_variables_with_a_note(gitlab, args, env):
    job = {"id": 7, "name": "dbt", "stage": "transform"}
    for form in ("shell", "dotenv"):
        result = CliRunner().invoke(cli, ["parent-env", "--format", form, *args], env={**job_env(gitlab, job), **env})
        assert result.exit_code == 0, result.output
        values = parse_shell(result.stdout) if form == "shell" else dict(
            line.split("=", 1) for line in result.stdout.splitlines())
        assert "OPENLINEAGE_PARENT_ID" not in values and "OPENLINEAGE_ROOT_PARENT_ID" not in values
        context = json.loads(values["OPENLINEAGE_CONTEXT"])["parent"]
        assert context["job"] == {"namespace": values["OPENLINEAGE_PARENT_JOB_NAMESPACE"],
                                  "name": values["OPENLINEAGE_PARENT_JOB_NAME"]}
        assert "/" in context["job"]["namespace"] + context["root"]["job"]["name"]
        [note] = result.stderr.splitlines()
        assert note.startswith("databand-gitlab-reporter: note: OPENLINEAGE_PARENT_ID and OPENLINEAGE_ROOT_PARENT_ID")
    for form in ("airflow-conf", "spark-conf"):  # nothing there is split: no note
        result = CliRunner().invoke(cli, ["parent-env", "--format", form, *args], env={**job_env(gitlab, job), **env})
        assert result.exit_code == 0 and result.stderr == ""


def test_without_a_slash_there_is_no_note(gitlab):
    result = CliRunner().invoke(cli, ["parent-env"], env=job_env(gitlab, {"id": 7, "name": "a/b", "stage": "c/d"}))
    assert result.exit_code == 0 and result.stderr == ""
    assert len(parse_shell(result.stdout)["OPENLINEAGE_PARENT_ID"].split("/")) == 3


def test_a_blank_around_a_name_is_dropped_as_the_report_drops_it(gitlab):
    # One rule for every command (settings.name_setting): the report's runs and the parent agree.
    job = {"id": 7, "name": "dbt", "stage": "transform"}
    for form in handoff.FORMATS:
        result = CliRunner().invoke(cli, ["parent-env", "--format", form],
                                    env={**job_env(gitlab, job), "DATABAND_NAMESPACE": " prod\t"})
        assert result.exit_code == 0, result.output
        text = result.stdout
        assert "prod" in text and " prod" not in text and "prod\t" not in text and "prod\\t" not in text


def test_dotenv_refuses_what_gitlab_would_alter_and_shell_carries_it(gitlab):
    job = {"id": 7, "name": "it's $HOME ", "stage": "transform"}
    dotenv = CliRunner().invoke(cli, ["parent-env", "--format", "dotenv"], env=job_env(gitlab, job))
    assert dotenv.exit_code == 2 and "--format shell" in dotenv.stderr
    assert "OPENLINEAGE" not in dotenv.stdout
    shell = CliRunner().invoke(cli, ["parent-env"], env=job_env(gitlab, job))
    assert shell.exit_code == 0
    assert parse_shell(shell.stdout)["OPENLINEAGE_PARENT_JOB_NAME"] == "acme.data-platform.transform.it's $HOME "


def _bash(script, env, cwd):
    # The reporter's own console script, found on PATH as in a job; nothing else of this shell leaks in.
    base = {"PATH": f"{REPORTER.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(cwd), "LC_ALL": "C.UTF-8"}
    if os.environ.get("PYTHONPATH"):
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run(["bash", "-c", script], env={**base, **env}, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


# GitLab runs a job's script lines in a shell that stops at the first failing one, as set -e does.
DOCUMENTED = {
    "eval": 'eval "$(databand-gitlab-reporter parent-env)"',
    "file": "databand-gitlab-reporter parent-env > databand-parent.env\n. ./databand-parent.env",
}


@pytest.mark.parametrize("form", DOCUMENTED)
@pytest.mark.parametrize("why", ["outside a job", "control character in the namespace"])
def test_a_failure_stops_a_set_e_script_in_the_documented_forms(gitlab, tmp_path, form, why):
    env = {} if why == "outside a job" else {**job_env(gitlab, {"id": 7, "name": "dbt", "stage": "t"}),
                                               "DATABAND_NAMESPACE": "pr\x01od"}
    script = f"set -eo pipefail\n{DOCUMENTED[form]}\necho reached dbt-ol\n"
    done = _bash(script, env, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "reached" not in done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("databand-gitlab-reporter: error:")


@pytest.mark.parametrize("form", DOCUMENTED)
def test_the_documented_forms_export_what_the_report_names(gitlab, tmp_path, form):
    job = {"id": 7, "name": "déploiement 🚀 \"prod\"/eu it's $HOME", "stage": "load data"}
    script = f"set -eo pipefail\n{DOCUMENTED[form]}\n" + "".join(
        f'printf "%s\\n" "${name}"\n' for name in ("OPENLINEAGE_PARENT_ID", "OPENLINEAGE_ROOT_PARENT_ID",
                                                   "OPENLINEAGE_PARENT_JOB_NAME"))
    done = _bash(script, job_env(gitlab, job), tmp_path)
    assert done.returncode == 0, done.stderr
    parent_id, root_id, job_name = done.stdout.splitlines()
    namespace = "gitlab:" + gitlab.url.split("://")[1]
    assert job_name == "acme.data-platform.load data.déploiement 🚀 \"prod\"%2Feu it's $HOME"
    assert parent_id == f"{namespace}/{job_name}/{ids.job_run_id(namespace[7:], 42, 7)}"
    assert root_id == f"{namespace}/acme.data-platform/{ids.pipeline_run_id(namespace[7:], 42, 9001)}"


def _on_a_terminal(args, env):
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(args, stdout=secondary, stderr=subprocess.PIPE, env=env, timeout=60)
    finally:
        os.close(secondary)
    seen = b""
    try:
        while chunk := os.read(primary, 65536):
            seen += chunk
    except OSError:  # Linux answers EIO once the terminal's other side is closed and drained
        pass
    os.close(primary)
    return done, seen.decode()


def test_a_terminal_gets_the_error_without_the_statement_for_eval(gitlab):
    # "(exit 2)" is for eval; a person who runs the command by hand sees only the error line.
    path = {"PATH": os.environ.get("PATH", ""), **({"PYTHONPATH": os.environ["PYTHONPATH"]}
                                                    if os.environ.get("PYTHONPATH") else {})}
    failed, seen = _on_a_terminal([str(REPORTER), "parent-env"], path)
    assert failed.returncode == 2 and b"CI_JOB_ID" in failed.stderr and seen == ""
    worked, seen = _on_a_terminal([str(REPORTER), "parent-env"],
                                  {**path, **job_env(gitlab, {"id": 7, "name": "dbt", "stage": "t"})})
    assert worked.returncode == 0 and "export OPENLINEAGE_PARENT_ID=" in seen


def test_workflow_name_names_the_pipeline_in_the_report_and_in_parent_env(gitlab):
    """`workflow:name` (the API's `name`, CI_PIPELINE_NAME in a job) is a level of the run names, the
    same in the report and in what dbt-ol is handed; a '/' in it is escaped like a job name's."""

    sample = pipelines.mixed(gitlab.url)
    sample.pipeline["name"] = "Nightly load/eu"
    sample.install(gitlab)
    job = next(j for j in sample.jobs if j["name"] == "compile")
    report = CliRunner().invoke(cli, ["resend", "--dry-run", "--json", "--project", "42", "--pipeline", "9001"],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token})
    assert report.exit_code == 0, report.output
    events = json.loads(report.stdout)
    assert events[0]["job"]["name"] == "acme.data-platform.Nightly load%2Feu"
    [mine] = [e for e in events if e["job"]["name"].endswith(".build.compile")]
    assert mine["job"]["name"] == "acme.data-platform.Nightly load%2Feu.build.compile"

    result = CliRunner().invoke(cli, ["parent-env"], env={**job_env(gitlab, job), "CI_PIPELINE_NAME": "Nightly load/eu"})
    assert result.exit_code == 0, result.output
    values = parse_shell(result.stdout)
    assert values["OPENLINEAGE_ROOT_PARENT_JOB_NAME"] == events[0]["job"]["name"]
    assert values["OPENLINEAGE_PARENT_JOB_NAME"] == mine["job"]["name"]
    assert len(values["OPENLINEAGE_PARENT_ID"].split("/")) == 3
