"""Settings as a newcomer pastes them, and what each command does with them (issue 22): a header
value pasted as a token, a name with a stray blank, a plain-http address, a pipeline named twice,
a sweep started outside a job. Each through the real CLI against the stand-ins on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import pipelines
from clirun import QUICK, env_for

from reporter.cli import cli
from reporter.retry import POLICY

FAST = {"delivery_bounds": QUICK, "gitlab_policy": POLICY.faster(0.01)}
PROG = "databand-gitlab-reporter"


def run(env, *args):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, obj=FAST)
    assert "Traceback" not in result.output
    return result


def lines_of(result, kind: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(f"{PROG}: {kind}:")]


@pytest.fixture
def sample(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


def job_env(gitlab, sample=None, **extra):
    """A job of the sample pipeline (its first), as GitLab's runner sets its variables."""
    job = sample.jobs[0] if sample else {"id": 7004, "name": "load", "stage": "deploy"}
    return {"GITLAB_CI": "true", "CI_SERVER_URL": gitlab.url, "CI_PROJECT_ID": "42",
            "CI_PROJECT_PATH": "acme/data-platform", "CI_PIPELINE_ID": "9001",
            "CI_JOB_ID": str(job["id"]), "CI_JOB_NAME": job["name"], "CI_JOB_STAGE": job["stage"], **extra}


# -- 1. a header's value pasted as the token -----------------------------------------------------

@pytest.mark.parametrize("setting, pasted, prefix", [
    ("GITLAB_TOKEN", "Bearer {gitlab}", "Bearer"),
    ("GITLAB_TOKEN", "PRIVATE-TOKEN: {gitlab}", "PRIVATE-TOKEN:"),
    ("--gitlab-token", "Bearer {gitlab}", "Bearer"),
    ("DATABAND_ACCESS_TOKEN", "Bearer {databand}", "Bearer"),
    ("DATABAND_ACCESS_TOKEN", "Authorization: Bearer {databand}", "Bearer"),
    ("--databand-token", "token {databand}", "token"),
    ("OPENLINEAGE_API_KEY", "Bearer key-0123456789", "Bearer"),
])
def test_a_header_pasted_as_a_token_is_refused_naming_the_setting_before_gitlab_is_read(
        gitlab, databand, sample, workdir, setting, pasted, prefix):
    value = pasted.format(gitlab=gitlab.token, databand=databand.token)
    env = env_for(gitlab, databand)
    args = ["resend", "--project", "42", "--pipeline", "9001"]
    if setting.startswith("--"):
        args += [setting, value]
    else:
        env[setting] = value
    result = run(env, *args)
    assert result.exit_code == 2, result.output
    (line,) = lines_of(result, "error")
    assert line.startswith(f"{PROG}: error: {setting} starts with {prefix!r}") and "token alone" in line
    token = value.split()[-1]
    assert token not in result.output  # the token is never echoed, whatever its prefix
    assert gitlab.count(r"/api/v4/") == 0 and databand.requests_seen == 0


def test_a_space_inside_a_gitlab_token_is_refused(gitlab, databand, sample):
    env = env_for(gitlab, databand, GITLAB_TOKEN=gitlab.token[:8] + " " + gitlab.token[8:])
    result = run(env, "resend", "--project", "42", "--pipeline", "9001")
    assert result.exit_code == 2
    (line,) = lines_of(result, "error")
    assert "GITLAB_TOKEN holds a space" in line and gitlab.token[8:] not in result.output


# -- 2. one rule for names, in every command -----------------------------------------------------

def _root_name(events: list[dict]) -> str:
    (root,) = {e["job"]["name"] for e in events if "parent" not in e["run"].get("facets", {})}
    return root


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_a_name_with_blanks_at_its_ends_names_the_same_runs_in_report_and_parent_env(gitlab, sample, how):
    env = job_env(gitlab, sample, GITLAB_TOKEN=gitlab.token)
    flags = ["--pipeline-name", "  nightly load "] if how == "flag" else []
    if how == "variable":
        env["DATABAND_PIPELINE_NAME"] = "  nightly load "
    report = run(env, "report", "--dry-run", "--json", *flags)
    assert report.exit_code == 0, report.output
    handed = run(env, "parent-env", "--format", "dotenv", *flags)
    assert handed.exit_code == 0, handed.output
    variables = dict(line.split("=", 1) for line in handed.stdout.splitlines())
    events = json.loads(report.stdout)
    assert _root_name(events) == variables["OPENLINEAGE_ROOT_PARENT_JOB_NAME"] == "nightly load"
    job = next(e for e in events if e["job"]["name"] == variables["OPENLINEAGE_PARENT_JOB_NAME"])
    assert job["run"]["runId"] == variables["OPENLINEAGE_PARENT_RUN_ID"]


def test_a_blank_namespace_is_the_default_in_report_and_parent_env(gitlab, sample):
    env = job_env(gitlab, sample, GITLAB_TOKEN=gitlab.token, DATABAND_NAMESPACE="   ")
    report = run(env, "report", "--dry-run", "--json")
    handed = run(env, "parent-env", "--format", "dotenv")
    assert report.exit_code == handed.exit_code == 0, handed.output
    variables = dict(line.split("=", 1) for line in handed.stdout.splitlines())
    namespaces = {e["job"]["namespace"] for e in json.loads(report.stdout)}
    assert namespaces == {variables["OPENLINEAGE_PARENT_JOB_NAMESPACE"]} == {"gitlab:" + gitlab.url.split("//")[1]}


# -- 3. a token over plain http ------------------------------------------------------------------

def test_plain_http_to_another_host_warns_once_a_token_and_still_tries(gitlab, databand, sample, workdir):
    env = env_for(gitlab, databand,
                  DATABAND_URL="http://databand.invalid/api/v1/tracking/open-lineage/u/events/bulk")
    result = run(env, "resend", "--project", "42", "--pipeline", "9001")
    assert result.exit_code == 4  # not refused: delivery was tried (the name does not resolve)
    (warning,) = lines_of(result, "warning")
    assert warning == (f"{PROG}: warning: DATABAND_URL is plain http://, so the Databand access token crosses the "
                       "network unencrypted: use https:// unless that network is trusted.")
    assert databand.token not in result.output


def test_plain_http_gitlab_warns_for_a_gitlab_token(gitlab, databand):
    env = env_for(gitlab, databand, GITLAB_URL="http://gitlab.invalid")
    result = run(env, "resend", "--project", "42", "--pipeline", "9001", "--gitlab-timeout", "2")
    assert result.exit_code == 3
    (warning,) = lines_of(result, "warning")
    assert "GITLAB_URL is plain http://, so the GitLab token crosses the network unencrypted" in warning


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_plain_http_on_this_machine_is_no_warning(gitlab, databand, sample, host):
    env = env_for(gitlab, databand)
    env = {k: v.replace("127.0.0.1", host) for k, v in env.items()}
    result = run(env, "resend", "--project", "42", "--pipeline", "9001")
    assert result.exit_code == 0, result.output
    assert not lines_of(result, "warning")


def test_a_job_token_alone_over_plain_http_is_no_warning(gitlab, sample):
    # The runner already sends the job token to that GitLab; the report adds nothing to see.
    env = job_env(gitlab, sample, CI_JOB_TOKEN="job-token", CI_SERVER_URL="http://gitlab.invalid")
    result = run(env, "report", "--dry-run", "--gitlab-timeout", "2")
    assert not lines_of(result, "warning")


def test_a_dry_run_sends_no_databand_token_so_no_warning(gitlab, sample):
    env = env_for(gitlab, DATABAND_URL="http://databand.invalid/api/v1/tracking/open-lineage/u/events/bulk",
                  DATABAND_ACCESS_TOKEN="databand-token")
    result = run(env, "resend", "--project", "42", "--pipeline", "9001", "--dry-run")
    assert result.exit_code == 0 and not lines_of(result, "warning")


# -- 4. a pipeline named twice -------------------------------------------------------------------

def test_a_pipeline_named_twice_is_read_and_sent_once_with_a_note(gitlab, databand, sample):
    once = run(env_for(gitlab, databand), "resend", "--project", "42", "--pipeline", "9001")
    sent_once, read_once = len(databand.events), gitlab.count(r"/pipelines/9001$")
    databand.clear_records()
    gitlab.clear_records()
    result = run(env_for(gitlab, databand), "resend", "--project", "42", "--pipeline", "9001", "--pipeline", "09001")
    assert once.exit_code == result.exit_code == 0, result.output
    assert len(databand.events) == sent_once and gitlab.count(r"/pipelines/9001$") == read_once
    (note,) = [line for line in result.output.splitlines() if line.startswith(f"{PROG}: note:")]
    assert note == f"{PROG}: note: --pipeline 9001 given more than once; each is reported once."
    assert result.output.count("Databand: pipeline 9001") == 1


# -- 5. sweep outside a job ----------------------------------------------------------------------

def test_sweep_without_a_project_names_the_flag_and_the_variable_a_job_sets(gitlab):
    result = run({"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token}, "sweep")
    assert result.exit_code == 2
    (line,) = lines_of(result, "error")
    assert line == (f"{PROG}: error: sweep needs --project, the project's id or path (group/project); in a GitLab "
                    "job it reads CI_PROJECT_ID.")


@pytest.mark.parametrize("args", [["sweep", "--dry-run"], ["resend", "--since", "2026-01-01", "--dry-run"]])
def test_a_listing_with_only_the_job_token_says_to_set_gitlab_token_before_asking_gitlab(gitlab, workdir, args):
    env = job_env(gitlab, CI_JOB_TOKEN="job-token")
    result = run(env, *args, "--project", "42")
    assert result.exit_code == 2
    (line,) = lines_of(result, "error")
    assert "set GITLAB_TOKEN (or --gitlab-token) to a token with read_api: CI_JOB_TOKEN cannot list them" in line
    assert gitlab.count(r"/api/v4/") == 0


# -- 5. an address with more than an address in it ---------------------------------------------

@pytest.mark.parametrize("tail", ["/?private_token=x", "?x=1", "/#frag", "#", "?"])
def test_a_gitlab_url_with_a_query_or_fragment_is_refused_before_gitlab_is_read(gitlab, databand, sample, tail):
    # The API paths went into the query, and GitLab's 404 blamed the project and pipeline ids (exit 3).
    result = run(env_for(gitlab, databand, GITLAB_URL=gitlab.url + tail), "resend", "--project", "42",
                 "--pipeline", "9001")
    assert result.exit_code == 2, result.output
    (line,) = lines_of(result, "error")
    assert "GITLAB_URL must be GitLab's address alone, without a ?query or #fragment" in line
    assert gitlab.count(r"/") == 0


def test_a_user_and_password_in_databand_url_is_refused_not_sent_in_place_of_the_token(gitlab, databand, sample):
    # requests sent them as Basic auth, and DATABAND_ACCESS_TOKEN was never sent.
    url = databand.url.replace("http://", "http://robot:s3cretPass99@")
    result = run(env_for(gitlab, databand, DATABAND_URL=url), "resend", "--project", "42", "--pipeline", "9001")
    assert result.exit_code == 2, result.output
    (line,) = lines_of(result, "error")
    assert "DATABAND_URL must not hold a user name and password" in line and "s3cretPass99" not in result.output
    assert databand.requests_seen == 0
