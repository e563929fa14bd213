"""Any input is one line and exit 2, never a traceback: every setting's variable and flag with
malformed URLs, numbers that str.isdigit() takes but int() does not, nan, and random text (a
property, hypothesis: 150 examples a run, seed fixed by the ci profile where one is loaded)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budget import examples
from clirun import quick
from reporter import targets
from reporter.cli import cli
from reporter.errors import ConfigError
from reporter.settings import SOURCES, Settings

URLS = ["http://[::1", "http://gitlab.example.com:99999", "https://gitlab.example.com:-1", "http://h:abc/",
        "https://user:pw-5f2a9c@[fe80::1/x", "https://ｇｉｔｌａｂ.example.com", "https://exa mple.com",
        "https://a..b.com/", "http://a..b/", "http://exa mple.com"]  # http://: no plain-http warning before the refusal


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
@pytest.mark.parametrize("value, said", [
    ("nan", None), ("-nan", None), ("inf", None),
    # int() and float() take other scripts' digits: '١' was one second, '５' five lines.
    ("١", "is not a number written in ASCII digits"), ("５", "is not a number written in ASCII digits"),
    ("1٠", "is not a number written in ASCII digits"),
])
def test_a_number_flag_refuses_nan_inf_and_other_scripts_digits(flag, value, said):
    result = run(["resend", "--project", "1", "--pipeline", "1", flag, value, "--dry-run"],
                 {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000"})
    assert result.exit_code == 2, result.output
    assert flag in result.output and "Traceback" not in result.output
    assert said is None or said in result.output


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


# Every variable and flag of resend at once, any text: control characters, lone surrogates (as the
# environment gives undecodable bytes), and values of up to 10,000 characters. Through the CLI, with
# stand-ins that count what reaches them: exit 0 or 2 only, one line on stderr when 2, no
# traceback, nothing sent when refused. Budget: 40 examples, 2 s on
# one core of a loaded machine (twenty times the examples under HYPOTHESIS_PROFILE=long).

FLAGS = ["--gitlab-url", "--gitlab-token", "--databand-url", "--databand-token", "--namespace", "--pipeline-name",
         "--project-name", "--gitlab-timeout", "--gitlab-concurrency", "--downstream-depth", "--log-lines",
         "--exclude-job", "--cost-factor", "--target-file"]
# The environment holds no NUL; every other character, and surrogates as os.environ decodes bytes.
env_text = st.one_of(st.text(st.characters(codec=None, categories=None, exclude_characters="\x00"), max_size=60),
                     st.sampled_from(["x" * 10_000, "\udcff\udcfe", "nan", "1e999", "٣", "http://[::1", " "]))
flag_text = st.text(st.characters(codec=None, categories=None, exclude_characters="\x00"), max_size=60)


def _environ_can_hold(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _tokens_sent(variables: dict, flags: dict) -> list[str]:
    """The token values the command would send: a flag wins over its variable; a variable's value is
    stripped and a blank one is unset; OPENLINEAGE_API_KEY goes as it is."""
    chosen = []
    for variable, flag in (("GITLAB_TOKEN", "--gitlab-token"), ("DATABAND_ACCESS_TOKEN", "--databand-token"),
                           ("CI_JOB_TOKEN", None)):
        if flag and (flags.get(flag) or "").strip():
            chosen.append(flags[flag])
        elif (variables.get(variable) or "").strip():
            chosen.append(variables[variable].strip())
    if variables.get("OPENLINEAGE_API_KEY"):
        chosen.append(variables["OPENLINEAGE_API_KEY"])
    return chosen


def _no_header_carries(token: str) -> bool:
    return token != token.strip() or any(not 0x20 <= ord(c) < 0x7F for c in token)


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(variables=st.dictionaries(st.sampled_from(VARIABLES + ["OPENLINEAGE_API_KEY", "CI_JOB_TOKEN"]),
                                 env_text.filter(_environ_can_hold), max_size=5),
       flags=st.dictionaries(st.sampled_from(FLAGS), flag_text, max_size=3))
def test_any_settings_through_the_cli_are_one_line_or_a_report(gitlab, databand, workdir, variables, flags):
    import pipelines

    if not getattr(gitlab, "sample_installed", False):  # the fixtures live for every example of the test
        pipelines.mixed(gitlab.url).install(gitlab)
        gitlab.sample_installed = True
    env = {"GITLAB_URL": gitlab.url, "GITLAB_TOKEN": gitlab.token, "DATABAND_URL": databand.url,
           "DATABAND_ACCESS_TOKEN": databand.token, **variables}
    args = ["resend", "--project", "42", "--pipeline", "9001"]
    for flag, value in flags.items():
        args += [flag, value]
    before = databand.requests_seen
    gitlab.requests.clear()
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False, obj=quick())
    assert "Traceback" not in result.output and "unexpected" not in result.stderr, result.output
    assert result.exit_code in (0, 2, 3, 4), result.output
    if any(_no_header_carries(token) for token in _tokens_sent(variables, flags)):
        assert result.exit_code == 2, result.output  # refused up front, never found at send time
    if result.exit_code == 2:
        lines = [line for line in result.stderr.strip().splitlines() if line]
        # click's usage errors end with one "Error: ..." line after the usage lines
        assert len(lines) == 1 or lines[-1].startswith("Error: "), result.stderr
        assert databand.requests_seen == before and gitlab.requests == []


@pytest.mark.parametrize("proxy", ["http://a..b/", "http://.", "http://user:pw-5f2a9c@a..b:8080",
                                   "http://proxy.example.com:99999", "http://exa mple.com:3128"])
@pytest.mark.parametrize("target", ["gitlab", "databand"])
def test_a_malformed_proxy_is_one_line_naming_its_variable(proxy, target):
    # The proxy for GitLab only, or for Databand only: each URL's own proxy is checked.
    env = {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000",
           "DATABAND_URL": "https://databand.example.com/api/v1/tracking/open-lineage/u/events/bulk",
           "DATABAND_ACCESS_TOKEN": "databand-bad-input", "HTTPS_PROXY": proxy, "https_proxy": None,
           "HTTP_PROXY": None, "ALL_PROXY": None, "no_proxy": None,
           "NO_PROXY": "databand.example.com" if target == "gitlab" else "gitlab.example.com"}
    result = run(["resend", "--project", "1", "--pipeline", "1"], env)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("databand-gitlab-reporter: error: HTTPS_PROXY (or https_proxy, ALL_PROXY) names a proxy "
                           "whose address is malformed")
    assert f"add {target}.example.com to NO_PROXY" in line and "pw-5f2a9c" not in result.output


@pytest.mark.parametrize("args, named", [
    (["resend", "--project", "a\udcff", "--pipeline", "1", "--dry-run"], "--project"),
    (["resend", "--project", "42", "--since", "2026-01-01", "--dry-run", "--ref=\udced\udcb3\udcbf"], "--ref"),
    (["resend", "--gitlab-token", "glpat-\udcffsecret-0000", "--project", "1", "--pipeline", "1"], "--gitlab-token"),
    (["\udcff"], "An argument"),
])
def test_an_argument_of_bytes_that_are_not_utf8_is_one_line_naming_it(args, named):
    """Python hands on undecodable bytes of an argument as lone surrogates; --ref and --project
    carried them to a request and ended as an "unexpected error"."""
    env = {"GITLAB_URL": "https://gitlab.example.com", "GITLAB_TOKEN": "glpat-bad-input-000000000000"}
    result = run(args, env)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {named} holds bytes that are not UTF-8 text"), line
    assert "secret-0000" not in result.output


def test_a_number_variable_takes_ascii_digits_only():
    with pytest.raises(ConfigError, match="DATABAND_GITLAB_TIMEOUT must be a number from 1 to 3600"):
        Settings.from_env({"DATABAND_GITLAB_TIMEOUT": "١"}, {})
