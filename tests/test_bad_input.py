"""Any input is one line and exit 2, never a traceback: every setting's variable and flag with
malformed URLs, numbers that str.isdigit() takes but int() does not, nan, and random text (a
property, hypothesis: 150 examples a run, seed fixed by the ci profile where one is loaded)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reporter import targets
from reporter.cli import cli
from reporter.errors import ConfigError
from reporter.settings import SOURCES, Settings

URLS = ["http://[::1", "http://gitlab.example.com:99999", "https://gitlab.example.com:-1", "http://h:abc/",
        "https://user:pw-5f2a9c@[fe80::1/x"]


def run(args, env):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("variable", ["GITLAB_URL", "DATABAND_URL", "CI_SERVER_URL"])
def test_a_malformed_url_is_one_line_naming_its_variable(url, variable):
    env = {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000",
           "DATABAND_URL": "https://databand.example.com/api/v1/tracking/open-lineage/u/events/bulk",
           "DATABAND_ACCESS_TOKEN": "databand-bad-input", variable: url}
    if variable == "CI_SERVER_URL":
        del env["GITLAB_URL"]
    result = run(["resend", "--project", "1", "--pipeline", "1"], env)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"databand-gitlab-reporter: error: {variable} must be an http(s) URL") and "unexpected" not in line
    assert "pw-5f2a9c" not in result.output


@pytest.mark.parametrize("args", [["--pipeline", "²"], ["--pipeline", "٣"], ["--project", "1", "--pipeline", "1x"]])
def test_an_id_that_is_not_plain_digits_is_one_line(args):
    env = {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000"}
    result = run(["resend", "--project", "1", *args, "--dry-run"], env)
    assert result.exit_code == 2, result.output
    assert "must be a number" in result.stderr and "unexpected" not in result.stderr


@pytest.mark.parametrize("flag", ["--gitlab-timeout", "--log-lines", "--gitlab-concurrency", "--downstream-depth"])
@pytest.mark.parametrize("value", ["nan", "-nan", "inf"])
def test_nan_and_inf_in_a_number_flag_are_refused(flag, value):
    result = run(["resend", "--project", "1", "--pipeline", "1", flag, value, "--dry-run"],
                 {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000"})
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output


VARIABLES = sorted({variable for source in SOURCES.values() for variable in source.variables})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.dictionaries(st.sampled_from(VARIABLES), st.text(max_size=80), min_size=1, max_size=6))
def test_any_variables_are_a_setting_or_one_config_error(values):
    environ = {"GITLAB_TOKEN": "glpat-bad-input-000000000000", "DATABAND_ACCESS_TOKEN": "databand-bad-input",
               **values}
    try:
        chosen = Settings.from_env(environ, {})
        chosen.gitlab()
        targets.make_targets(chosen)
    except ConfigError as error:
        assert "\n" not in str(error).strip(), str(error)
