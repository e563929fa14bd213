"""What a newcomer sets wrong, and the one line each gets back: it names the variable or flag the
user actually set and says what to do, with the exit code of its side, never a traceback. Each
case was found by trying the README's commands with a mistaken setting, against real servers on
127.0.0.1 (issue 22)."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

import pipelines
from clirun import QUICK, env_for

from reporter.cli import cli
from reporter.retry import POLICY

FAST = {"delivery_bounds": QUICK, "gitlab_policy": POLICY.faster(0.01)}


def run(env, *args):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, obj=FAST)
    assert "Traceback" not in result.output
    return result


def resend(env, *args):
    return run(env, "resend", "--project", "42", "--pipeline", "9001", *args)


def error_line(result) -> str:
    (line,) = [line for line in result.output.splitlines() if line.startswith("databand-gitlab-reporter: error:")]
    return line


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sample(gitlab):
    return pipelines.mixed(gitlab.url).install(gitlab)


# -- tokens: the message names the one the user set ---------------------------------------------

@pytest.mark.parametrize("how, named", [
    ("GITLAB_TOKEN", "check that GITLAB_TOKEN is valid and not expired"),
    ("--gitlab-token", "check that --gitlab-token is valid and not expired"),
    ("CI_JOB_TOKEN", "a CI_JOB_TOKEN is valid only while its job runs; outside it, set GITLAB_TOKEN"),
])
def test_a_refused_gitlab_token_is_named_as_the_user_set_it(gitlab, databand, sample, how, named):
    env = env_for(gitlab, databand)
    del env["GITLAB_TOKEN"]
    args = ()
    if how == "GITLAB_TOKEN":
        env["GITLAB_TOKEN"] = "glpat-expired-expired-expired"
    elif how == "--gitlab-token":
        args = ("--gitlab-token", "glpat-expired-expired-expired")
    else:
        env["CI_JOB_TOKEN"] = "glcbt-expired-expired-expired"
    result = resend(env, *args)
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert f"GitLab refused the {how} (401)" in line and named in line, line


# -- URLs ---------------------------------------------------------------------------------------

def test_https_on_a_plain_http_port_says_the_scheme_is_wrong_not_the_certificate(gitlab, databand, sample):
    wrong = gitlab.url.replace("http://", "https://")
    result = resend(env_for(gitlab, databand, GITLAB_URL=wrong))
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert "GITLAB_URL is https://, but the server there answers plain http" in line, line
    assert "CA_FILE" not in line and "certificate" not in line

    result = resend(env_for(gitlab, databand, DATABAND_URL=databand.url.replace("http://", "https://")))
    assert result.exit_code == 4, result.output
    line = error_line(result)
    assert "answers plain http, not TLS" in line and "check the scheme of DATABAND_URL" in line, line
    assert "DATABAND_CA_FILE" not in line


def test_a_project_page_pasted_as_gitlab_url_is_named_on_the_404(gitlab, databand, sample):
    result = resend(env_for(gitlab, databand, GITLAB_URL=f"{gitlab.url}/acme/data-platform"))
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert "(404)" in line and "GITLAB_URL has the path /acme/data-platform" in line, line
    assert "set GITLAB_URL to GitLab's own address" in line
    # A URL without a path gets no such hint: the ids are then what is wrong.
    plain = run(env_for(gitlab, databand), "resend", "--project", "42", "--pipeline", "1")
    assert plain.exit_code == 3 and "has the path" not in error_line(plain)


@pytest.mark.parametrize("project, said", [
    ("https://gitlab.example.com/acme/data-platform", "--project acme/data-platform."),
    ("https://gitlab.example.com/acme/data-platform/-/pipelines/9001", "--project acme/data-platform."),
    ("git@gitlab.example.com:acme/data-platform.git", "--project acme/data-platform."),
    ("acme/data-platform.git", "without .git: --project acme/data-platform."),
])
def test_a_project_address_is_refused_with_the_path_to_give_before_any_request(gitlab, databand, project, said):
    for args in (["resend", "--project", project, "--pipeline", "9001"],
                 ["resend", "--project", project, "--since", "2026-10-01"],
                 ["sweep", "--project", project]):
        result = run(env_for(gitlab, databand), *args)
        assert result.exit_code == 2, (args, result.output)
        assert said in error_line(result), result.output
    assert gitlab.requests == []


def test_a_pipeline_page_as_pipeline_names_its_id(gitlab, databand):
    result = run(env_for(gitlab, databand), "resend", "--project", "42", "--pipeline",
                 "https://gitlab.example.com/acme/data-platform/-/pipelines/9001")
    assert result.exit_code == 2
    assert "(the id at the end of the pipeline's address: --pipeline 9001)" in error_line(result)


def test_a_backfill_of_a_missing_project_reads_as_english(gitlab, databand):
    result = run(env_for(gitlab, databand), "resend", "--project", "77", "--since", "2026-10-01")
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert "GitLab has no project 77 (404)" in line and "has no the" not in line, line


def test_resend_status_is_checked_before_gitlab_is_asked(gitlab, databand):
    result = run(env_for(gitlab, databand), "resend", "--project", "42", "--since", "2026-10-01", "--status", "passed")
    assert result.exit_code == 2 and "'passed' is not one of" in result.output, result.output
    assert gitlab.requests == []


# -- what answers instead of GitLab -------------------------------------------------------------

def test_an_html_error_page_that_lasts_points_at_gitlab_url_and_the_proxy(gitlab, databand, sample):
    gitlab.fail(r"/pipelines/9001", 502, times=100, headers={"Content-Type": "text/html"},
                body=b"<html><body>502 Bad Gateway</body></html>")
    result = resend(env_for(gitlab, databand))
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert "GitLab answered 502 (text/html)" in line and "check GITLAB_URL and any proxy in between" in line, line


def test_gitlabs_own_json_5xx_blames_no_proxy(gitlab, databand, sample):
    gitlab.fail(r"/pipelines/9001", 500, times=100)
    line = error_line(resend(env_for(gitlab, databand)))
    assert "try again later" in line and "proxy" not in line, line


def test_a_dead_proxy_is_named_not_gitlab_or_databand(gitlab, databand, sample):
    proxy = f"http://127.0.0.1:{dead_port()}"
    result = resend(env_for(gitlab, databand, HTTP_PROXY=proxy))
    assert result.exit_code == 3, result.output
    line = error_line(result)
    assert "through the proxy" in line and "HTTP_PROXY" in line and "add 127.0.0.1 to NO_PROXY" in line, line

    # GitLab reached directly (NO_PROXY), Databand by another name through the dead proxy.
    databand_url = databand.url.replace("127.0.0.1", "localhost")
    result = resend(env_for(gitlab, databand, HTTP_PROXY=proxy, NO_PROXY="127.0.0.1", DATABAND_URL=databand_url))
    assert result.exit_code == 4, result.output
    line = error_line(result)
    assert "ProxyError" in line and "HTTP_PROXY" in line and "add localhost to NO_PROXY" in line, line


# -- help ----------------------------------------------------------------------------------------

def test_the_top_level_help_has_examples_a_newcomer_can_paste():
    text = CliRunner().invoke(cli, ["--help"]).output
    assert "Examples:" in text and "databand-gitlab-reporter demo" in text


# -- the component's databand_url input, as the user wrote it -----------------------------------

def _reporter_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "report --databand-url" in line or "sweep --project" in line]


def test_the_components_empty_databand_url_names_the_variable_its_input_reads(gitlab, tmp_path):
    """`databand_url: $DATABAND_PROD_URL` with that variable missing in the job (a Protected one on
    another branch): each command line of both components, run by bash as the job's shell would,
    names DATABAND_PROD_URL, not the --databand-url flag the component wrote."""
    import os
    import subprocess
    import sys

    from test_component import render
    from test_sweep import render_sweep

    given = {"databand_url": "$DATABAND_PROD_URL"}
    jobs = render(given)
    lines = _reporter_lines(jobs["databand-report"]["script"]) + _reporter_lines(
        jobs[".databand-report-after-script"]["after_script"]) + _reporter_lines(
        render_sweep(given)[1]["databand-sweep"]["script"])
    assert len(lines) == 3, lines
    reporter = os.path.join(os.path.dirname(sys.executable), "databand-gitlab-reporter")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GITLAB_CI": "true", "CI_PROJECT_ID": "42",
           "CI_PIPELINE_ID": "9001", "CI_JOB_ID": "7004", "CI_SERVER_URL": gitlab.url,
           "GITLAB_TOKEN": gitlab.token, "DATABAND_ACCESS_TOKEN": "databand-token-0000"}
    for line in lines:
        script = f'databand_reporter="{reporter}"\n{line.split("; fi;", 1)[-1]}'
        done = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        said = done.stderr + done.stdout
        assert "DATABAND_PROD_URL is empty in this job (the component's databand_url input reads it)" in said, said
        assert "--databand-url" not in said and "Traceback" not in said, said


# -- parent-env and the help ---------------------------------------------------------------------

def test_parent_env_outside_a_job_says_where_to_run_it_and_names_the_url_the_user_set():
    outside = CliRunner().invoke(cli, ["parent-env", "--format", "dotenv"], env={})
    assert outside.exit_code == 2
    assert "Run it in the script of the job whose run dbt-ol, Spark or Airflow should hang under" in outside.output
    job = {"CI_PROJECT_ID": "1", "CI_PROJECT_PATH": "acme/dp", "CI_PIPELINE_ID": "2", "CI_JOB_ID": "3",
           "CI_JOB_NAME": "load", "CI_JOB_STAGE": "test", "GITLAB_URL": "gitlab.example.com"}
    wrong = CliRunner().invoke(cli, ["parent-env", "--format", "dotenv"], env=job)
    assert wrong.exit_code == 2 and "--gitlab-url (or GITLAB_URL) must be an http(s) URL" in wrong.output, wrong.output


def test_the_gitlab_url_help_says_what_kind_of_address():
    text = " ".join(CliRunner().invoke(cli, ["resend", "--help"]).output.split())
    assert "e.g. https://gitlab.example.com (no /api/v4, no project path)" in text


def test_a_url_variable_of_type_file_is_recognised(gitlab, databand, tmp_path):
    """A CI/CD variable of type File gives the job a path to a file holding the value."""
    held = tmp_path / "DATABAND_URL"
    held.write_text(databand.url)
    result = resend(env_for(gitlab, databand, DATABAND_URL=str(held)))
    assert result.exit_code == 2
    line = error_line(result)
    assert line.startswith("databand-gitlab-reporter: error: DATABAND_URL must be an http(s) URL")
    assert "a CI/CD variable of type File holds one; make it of type Variable" in line, line
    assert gitlab.requests == []


def test_resend_from_file_says_what_the_file_is_when_it_cannot_send_it(gitlab, databand, tmp_path):
    """The file target's NDJSON is a file the reporter wrote, but not one resend takes; an empty
    array holds nothing. Both are said as such, before anything is sent."""
    import json

    ndjson = tmp_path / "openlineage-events.ndjson"
    ndjson.write_text("".join(json.dumps({"eventType": kind, "run": {"runId": "r"}}) + "\n"
                              for kind in ("START", "COMPLETE")))
    single = tmp_path / "one.ndjson"
    single.write_text(json.dumps({"eventType": "START", "run": {"runId": "r"}}) + "\n")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    for path, said in ((ndjson, "holds a JSON document a line (the file target's lifecycle events"),
                       (single, "holds a JSON document a line"), (empty, "holds no events (an empty array)")):
        result = run(env_for(gitlab, databand), "resend", "--from-file", str(path))
        assert result.exit_code == 2 and said in error_line(result), result.output
    assert databand.events == []


def test_http_for_an_https_only_host_says_to_write_https(databand, workdir):
    """GitLab and Databand on https answer http:// with a redirect to the same address on https."""
    from hostile import HostileGitLab
    from werkzeug.wrappers import Response

    with HostileGitLab() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        to_https = gitlab.url.replace("http://", "https://")
        gitlab.on(r"/api/v4/", lambda request: Response(status=301, headers={"Location": to_https + request.path}))
        result = resend(env_for(gitlab, databand))
        assert result.exit_code == 3, result.output
        assert "(https, where GitLab's URL is http: write GITLAB_URL with https://)" in error_line(result)

    with HostileGitLab() as gitlab:
        pipelines.mixed(gitlab.url).install(gitlab)
        databand.script({"status": 308, "headers": {"Location": databand.url.replace("http://", "https://")}})
        result = resend(env_for(gitlab, databand))
        assert result.exit_code == 4, result.output
        assert "308 a redirect to https://, which is not delivery: write DATABAND_URL with https://" in \
            error_line(result)


@pytest.mark.parametrize("suffix", ["/api/v4", "/api/v4/", "/api/v4/projects/42"])
def test_an_api_url_as_gitlab_url_is_turned_into_gitlabs_own_address(gitlab, databand, suffix):
    result = resend(env_for(gitlab, databand, GITLAB_URL=gitlab.url + suffix))
    assert result.exit_code == 2, result.output
    assert error_line(result).endswith(f"GITLAB_URL must be GitLab's own address, without /api/v4 (the reporter "
                                       f"adds it): {gitlab.url}.")
    assert gitlab.requests == []
