"""Settings.from_env: one precedence (flag > variable > CI_* default > default), read once, and errors
that name what the user actually set."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from reporter.cli import cli
from reporter.errors import ConfigError
from reporter.settings import Settings


def test_flag_wins_over_variable_and_variable_over_ci_default():
    env = {"GITLAB_URL": "https://mine.example.com", "CI_SERVER_URL": "https://ci.example.com",
           "DATABAND_LOG_LINES": "7", "CI_JOB_TOKEN": "job-token-0000"}
    settings = Settings.from_env(env, {"gitlab_url": "https://flag.example.com", "log_lines": None})
    assert settings.gitlab_url == "https://flag.example.com" and settings.source("gitlab_url") == "--gitlab-url"
    assert settings.log_lines == 7 and settings.source("log_lines") == "DATABAND_LOG_LINES"
    assert settings.job_token == "job-token-0000"
    assert Settings.from_env(env).gitlab_url == "https://mine.example.com"
    del env["GITLAB_URL"]
    only_ci = Settings.from_env(env)
    assert only_ci.gitlab_url == "https://ci.example.com" and only_ci.source("gitlab_url") == "CI_SERVER_URL"
    assert Settings.from_env({}).log_lines == 100  # the default


def test_lists_and_booleans_from_variables():
    settings = Settings.from_env({"DATABAND_EXCLUDE_JOBS": "databand-* lint", "DATABAND_TEST_RESULTS": "false",
                                  "DATABAND_TARGETS": "databand console"})
    assert settings.exclude_jobs == ("databand-*", "lint")
    assert settings.test_results is False
    assert settings.targets == ("databand", "console")
    assert Settings.from_env({}, {"exclude_jobs": ()}).exclude_jobs == ()  # no flag given: the default


@pytest.mark.parametrize("variable, value, said", [
    ("DATABAND_LOG_LINES", "many", "DATABAND_LOG_LINES must be a number from 0 to 10000"),
    ("DATABAND_GITLAB_TIMEOUT", "0", "DATABAND_GITLAB_TIMEOUT must be a number from 1 to 3600"),
    ("DATABAND_TEST_RESULTS", "perhaps", "DATABAND_TEST_RESULTS must be true or false"),
    ("DATABAND_TARGETS", "databand kafka", "DATABAND_TARGETS must be some of databand"),
])
def test_a_malformed_variable_is_named(variable, value, said):
    with pytest.raises(ConfigError, match=said):
        Settings.from_env({variable: value})
    result = CliRunner().invoke(cli, ["report"], env={variable: value})
    assert result.exit_code == 2 and said in result.stderr and "Traceback" not in result.output


def test_errors_name_the_flag_or_the_variable_used():
    settings = Settings.from_env({"DATABAND_URL": "databand.example.com", "DATABAND_ACCESS_TOKEN": "t" * 20})
    with pytest.raises(ConfigError, match="^DATABAND_URL must be an http"):
        settings.databand()
    settings = Settings.from_env({}, {"databand_url": "databand.example.com"})
    with pytest.raises(ConfigError, match="^--databand-url must be an http"):
        settings.databand()


def test_settings_never_show_a_token():
    settings = Settings.from_env({"GITLAB_TOKEN": "glpat-abcdefghijklmnopqrst", "DATABAND_ACCESS_TOKEN": "d" * 30})
    assert "glpat" not in repr(settings) and "d" * 30 not in repr(settings)


@pytest.mark.parametrize("url, ok", [
    ("https://client.databand.ai/api/v1/tracking/open-lineage/3a8bc7f8-0c65/events/bulk", True),
    ("https://proxy.example.com/databand/api/v1/tracking/open-lineage/3a8b/events/bulk/", True),
    ("https://client.databand.ai", False),  # the UI's address, copied instead of the endpoint
    ("https://client.databand.ai/api/v1/tracking/open-lineage/3a8b/events", False),
    ("https://client.databand.ai/app/projects", False),
])
def test_the_databand_url_must_be_the_bulk_endpoint(url, ok):
    settings = Settings.from_env({"DATABAND_URL": url, "DATABAND_ACCESS_TOKEN": "t" * 20})
    if ok:
        assert settings.databand()[0] == url.rstrip("/")
    else:
        with pytest.raises(ConfigError, match=r"^DATABAND_URL must be the custom integration's bulk endpoint"):
            settings.databand()


def test_a_wrong_databand_url_is_said_before_gitlab_is_read(gitlab):
    result = CliRunner().invoke(cli, ["resend", "--project", "42", "--pipeline", "9001"],
                                env={"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token,
                                     "DATABAND_URL": "https://client.databand.ai", "DATABAND_ACCESS_TOKEN": "t" * 20})
    assert result.exit_code == 2 and "bulk endpoint" in result.stderr
    assert gitlab.requests == []
